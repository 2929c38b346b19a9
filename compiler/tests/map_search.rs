//! The mapping pass against its own yardsticks: the verifier accepts what the searches
//! produce, the exhaustive search bounds the default one on small models, random chips
//! either map validly or fail with a clear error, and models too big for DRAM say so.

use isa::ChipDesc;
use proptest::prelude::*;
use snnc::graph::LayerGraph;
use snnc::map::search::{default_search, exhaustive_search};
use snnc::map::{MapError, MapOptions, Objective, verify};
use std::path::Path;

const SMALL: [&str; 6] = ["fc16", "fc16_rect_cemem", "conv16", "conv16_maxpool_ce", "digits", "fc784"];

fn graph(name: &str) -> LayerGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../models/{name}.snn"));
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snnc::compile_graph(&source).unwrap_or_else(|e| panic!("{name}: {e:?}"))
}

fn score(objective: Objective, m: &snnc::map::Mapping) -> f64 {
    match objective {
        Objective::Latency => m.total.cycles as f64,
        Objective::Energy => m.total.energy.total(),
        Objective::Dram => m.total.dram.total() as f64,
    }
}

/// The largest relative gap allowed between default and exhaustive search (see the
/// closing note in docs/mapping.md for the measured gaps).
const MAX_GAP: f64 = 0.05;

#[test]
fn exhaustive_search_bounds_the_default_search_on_small_models() {
    let chip = ChipDesc::default();
    for name in SMALL {
        let g = graph(name);
        for objective in [Objective::Latency, Objective::Energy, Objective::Dram] {
            let options = MapOptions { objective, ..MapOptions::default() };
            let d = default_search(&g, &chip, &options).unwrap_or_else(|e| panic!("{name}: {e}"));
            let x = match exhaustive_search(&g, &chip, &options) {
                Ok(x) => x,
                Err(MapError::TooLarge { .. }) => continue,
                Err(e) => panic!("{name}: {e}"),
            };
            assert!(verify(&x, &g, &chip).is_empty());
            let (sd, sx) = (score(objective, &d), score(objective, &x));
            assert!(sx <= sd * (1.0 + 1e-9), "{name} {objective:?}: exhaustive {sx} worse than default {sd}");
            let gap = sd / sx.max(1e-30) - 1.0;
            eprintln!("{name:<20} {objective:?}: default {sd:.4e}, exhaustive {sx:.4e}, gap {:.2}%", gap * 100.0);
            assert!(gap <= MAX_GAP, "{name} {objective:?}: default is {:.1}% behind exhaustive", gap * 100.0);
        }
    }
}

#[test]
fn a_model_too_big_for_dram_names_the_sizes_and_the_fix() {
    let g = graph("fc784_512");
    let mut chip = ChipDesc::default();
    chip.dram.capacity_bytes = 1 << 20;
    let err = default_search(&g, &chip, &MapOptions::default()).err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("does not fit") && err.contains("dram.capacity_bytes >="), "{err}");
}

#[test]
fn every_objective_gives_a_valid_mapping() {
    let chip = ChipDesc::default();
    let g = graph("conv16");
    for objective in [Objective::Latency, Objective::Energy, Objective::Dram] {
        let m = default_search(&g, &chip, &MapOptions { objective, ..MapOptions::default() })
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(verify(&m, &g, &chip), vec![]);
    }
}

/// A random chip that passes validation: 1..=32 cores on a mesh large enough for them,
/// buffers scaled between a quarter and four times the default's (never below one tile),
/// and varied bandwidths.
fn chip_strategy() -> impl Strategy<Value = ChipDesc> {
    (1usize..=32, 0usize..3, prop::collection::vec(0u32..5, 15), 1u32..64, 1u32..32).prop_map(
        |(cores, shape, scales, link, dram)| {
            let mut chip = ChipDesc::default();
            let width = [1, 4, 8][shape].min(cores) as u16;
            let height = cores.div_ceil(usize::from(width)) as u16;
            chip.noc.width = width;
            chip.noc.height = height;
            chip.cores = (0..cores as u16).map(|i| [i % width, i / width]).collect();
            chip.noc.link_bytes_per_cycle = link;
            chip.dram.bytes_per_cycle = dram;
            let mut i = 0;
            for engine in [&mut chip.engines.fp, &mut chip.engines.bp, &mut chip.engines.wg] {
                let tile = u64::from(engine.rows) * u64::from(engine.cols);
                for b in engine.buffers.values_mut() {
                    let scale = [0.25, 0.5, 1.0, 2.0, 4.0][scales[i % scales.len()] as usize];
                    i += 1;
                    let elems = ((b.bits / u64::from(b.elem_bits)) as f64 * scale) as u64;
                    let elems = elems.max(tile).div_ceil(u64::from(b.width_bits / b.elem_bits)).max(1)
                        * u64::from(b.width_bits / b.elem_bits);
                    b.bits = elems * u64::from(b.elem_bits);
                }
            }
            chip
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, .. ProptestConfig::default() })]

    #[test]
    fn random_chips_map_small_models_validly_or_say_why(chip in chip_strategy(), which in 0usize..SMALL.len()) {
        prop_assert_eq!(chip.validate(), vec![]);
        let g = graph(SMALL[which]);
        match default_search(&g, &chip, &MapOptions::default()) {
            Ok(m) => prop_assert_eq!(verify(&m, &g, &chip), vec![]),
            Err(e) => prop_assert!(!e.to_string().is_empty()),
        }
    }
}

#[test]
fn the_verifier_reports_every_broken_invariant() {
    let chip = ChipDesc::default();
    let g = graph("conv16");
    let mut m = default_search(&g, &chip, &MapOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let first = *m.units.keys().next().unwrap_or_else(|| panic!("no unit"));
    let unit = m.units.get_mut(&first).unwrap_or_else(|| panic!("no unit"));
    // A core that does not exist, a channel range that overlaps its neighbour's, and a
    // buffer holding more than it can.
    unit.slices[0].core = 99;
    unit.slices[0].channels.end += 1;
    if let Some(fp) = unit.engines.get_mut(&snnc::map::Engine::Fp) {
        fp.buffers.insert("w".to_string(), u64::MAX);
    }
    let text: Vec<String> = verify(&m, &g, &chip).iter().map(ToString::to_string).collect();
    let all = text.join("\n");
    assert!(all.contains("core 99: the chip has 20 cores"), "{all}");
    assert!(all.contains("overlaps"), "{all}");
    assert!(all.contains("fp.w holds"), "{all}");
}
