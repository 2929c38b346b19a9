//! Code generation follows the mapping pass: every layer's FP work runs on the cores
//! `snnc::map` gives it (a staged layer's tiles dealt over them, a resident unit on its one
//! core), and a mapping that cannot be followed leaves the layers it concerns on all cores
//! (staged) or unit `i` on core `i` (resident), with a note in `--emit mapping`. The
//! expected cores always come from the mapping itself.

use isa::{ChipDesc, Program, Stream, SymbolKind};
use snnc::codegen::{self, CodegenOptions, CoreMap, Placement, PlacementChoice};
use snnc::graph::LayerGraph;
use snnc::map::{MapError, MapOptions, Mapping, map_graph};
use std::collections::BTreeSet;
use std::path::Path;

fn graph(model: &str) -> LayerGraph {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../models").join(format!("{model}.snn"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    snnc::compile_graph(&text).unwrap_or_else(|e| panic!("{e:?}"))
}

fn mapping(g: &LayerGraph, chip: &ChipDesc) -> Mapping {
    map_graph(g, chip, &MapOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

fn compile(g: &LayerGraph, chip: &ChipDesc, cores: &CoreMap) -> Program {
    codegen::compile_with(g, chip, cores, &CodegenOptions::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The cores whose FP stream runs FP-engine instructions (conv, linear, lif, pool, sum)
/// inside the span the layer symbol `name` gives it: cores with no work for the layer
/// only arrive at its barrier.
fn fp_cores(p: &Program, name: &str) -> BTreeSet<u16> {
    let works = |core: u16, addr: u32, len: u32| {
        let stream = p.cores.get(usize::from(core)).map_or(&[][..], |c| c.stream(Stream::Fp));
        let span = stream.iter().skip(addr as usize).take(len as usize);
        span.into_iter().any(|i| i.opcode().unit() == isa::Unit::Fp)
    };
    p.symbols
        .iter()
        .filter(|s| s.name == name)
        .filter_map(|s| match s.kind {
            SymbolKind::Layer { core, stream: Stream::Fp } if works(core, s.addr, s.len) => Some(core),
            _ => None,
        })
        .collect()
}

/// The layer symbol of the unit whose weight layer is `weight` (`weight+neuron`).
fn unit_symbol(p: &Program, weight: &str) -> String {
    let prefix = format!("{weight}+");
    let names: BTreeSet<&str> = p
        .symbols
        .iter()
        .filter(|s| matches!(s.kind, SymbolKind::Layer { .. }) && s.name.starts_with(&prefix))
        .map(|s| s.name.as_str())
        .collect();
    assert_eq!(names.len(), 1, "one layer symbol for {weight}: {names:?}");
    names.into_iter().next().map(str::to_string).unwrap_or_default()
}

/// A unit's cores as the mapping lists them.
fn unit_cores(m: &Mapping, weight: snnc::graph::LayerId) -> Vec<u16> {
    let unit = m.units.get(&weight).unwrap_or_else(|| panic!("{weight} is mapped"));
    unit.cores().map(|c| u16::try_from(c).unwrap_or(u16::MAX)).collect()
}

/// The cores of a unit's whole segment, in the mapping's order: what a staged program
/// gives each layer of the unit, since it runs a segment's units one after another.
fn segment_cores(m: &Mapping, weight: snnc::graph::LayerId) -> Vec<u16> {
    let segment = m.units.get(&weight).map(|u| u.segment);
    let mut out: Vec<u16> = Vec::new();
    for unit in m.units.values().filter(|u| Some(u.segment) == segment) {
        for c in unit.cores().map(|c| u16::try_from(c).unwrap_or(u16::MAX)) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// A staged layer runs on its segment's cores: with several segments (`vgg_cifar_small`)
/// that moves layers off some cores; with one (`fc784_512`) every layer keeps all of them.
#[test]
fn staged_layers_run_their_forward_tiles_on_the_mapped_cores() {
    let chip = ChipDesc::default();
    for model in ["vgg_cifar_small", "fc784_512"] {
        let g = graph(model);
        let m = mapping(&g, &chip);
        let mapped = compile(&g, &chip, &CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::Mapped));
        let all = compile(&g, &chip, &CoreMap::choose(&g, &chip, PlacementChoice::AllCores));
        let mut differs = false;
        for &weight in m.units.keys() {
            let name = unit_symbol(&mapped, &g.layer(weight).name);
            // A layer with fewer tiles than cores reaches only the first of them: as many
            // as it reaches of all cores.
            let reach = fp_cores(&all, &name).len();
            let want: BTreeSet<u16> = segment_cores(&m, weight).into_iter().take(reach).collect();
            assert_eq!(fp_cores(&mapped, &name), want, "{model}: {name}");
            differs |= fp_cores(&all, &name) != want;
        }
        let segments = m.units.values().map(|u| u.segment).collect::<BTreeSet<_>>().len();
        assert_eq!(differs, segments > 1, "{model}: {segments} segment(s)");
    }
}

/// The default chip cut to two cores, listed so that the mesh's snake order (which the
/// mapping follows) starts at core 1.
fn two_cores_swapped() -> ChipDesc {
    let mut chip = ChipDesc { cores: vec![[1, 0], [0, 0]], ..ChipDesc::default() };
    chip.noc.width = 2;
    chip.noc.height = 1;
    chip
}

#[test]
fn a_resident_unit_runs_on_its_mapped_core() {
    let (g, chip) = (graph("digits"), two_cores_swapped());
    let m = mapping(&g, &chip);
    let cores = CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::Mapped);
    let p = compile(&g, &chip, &cores);
    let mut moved = false;
    for (i, (&weight, _)) in m.units.iter().enumerate() {
        let want = unit_cores(&m, weight);
        assert_eq!(want.len(), 1, "the mapping gives {weight} one core on a two-core chip");
        let name = unit_symbol(&p, &g.layer(weight).name);
        assert_eq!(fp_cores(&p, &name), want.iter().copied().collect(), "{name}");
        moved |= want != [i as u16];
    }
    assert!(moved, "the mapping should differ from unit i on core i");
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    assert!(!text.contains("note:"), "{text}");
}

#[test]
fn a_mapped_resident_program_trains_like_unit_i_on_core_i() {
    let (g, chip) = (graph("digits"), two_cores_swapped());
    let options = CodegenOptions { steps: 2, outputs: true, ..CodegenOptions::default() };
    let mapped = codegen::compile(&g, &chip, &options).unwrap_or_else(|e| panic!("{e}"));
    let placement = Placement::default_for(&g, &chip).unwrap_or_else(|e| panic!("{e}"));
    let plain = codegen::compile_placed(&g, &chip, &placement, &options).unwrap_or_else(|e| panic!("{e}"));
    assert_ne!(mapped.to_bytes(), plain.to_bytes(), "the placements differ");
    let names = ["loss", "output", "hidden.weight_master", "classes.weight_master"];
    assert_eq!(run(&mapped, &chip, &names), run(&plain, &chip, &names));
}

/// Runs `program` on a fixed sparse input and one-hot targets; the bytes of `names`.
fn run(program: &Program, chip: &ChipDesc, names: &[&str]) -> Vec<Vec<u8>> {
    let mut m = sim::Machine::new(program, chip, sim::SimOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let size = |n: &str| program.symbols.iter().find(|s| s.name == n).map_or(0, |s| s.len as usize);
    let input: Vec<u8> = (0..size("input")).map(|i| (i * 37 % 251) as u8 & 0x49).collect();
    m.write_symbol("input", &input).unwrap_or_else(|e| panic!("{e}"));
    let targets = size("target") / 2;
    let onehot: Vec<f32> = (0..targets).map(|i| if i % 10 == (i / 10) % 10 { 1.0 } else { 0.0 }).collect();
    m.write_f16("target", &onehot).unwrap_or_else(|e| panic!("{e}"));
    m.run().unwrap_or_else(|e| panic!("{e}"));
    names.iter().map(|n| m.read_symbol(n).unwrap_or_else(|e| panic!("{n}: {e}"))).collect()
}

#[test]
fn a_unit_the_mapping_splits_stays_resident_on_core_i_with_a_note() {
    let (g, chip) = (graph("digits"), ChipDesc::default());
    let m = mapping(&g, &chip);
    let split = m.units.values().find(|u| u.slices.len() > 1);
    let split = split.unwrap_or_else(|| panic!("the mapping splits a unit of digits over several cores"));
    let cores = CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::Mapped);
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    let name = &g.layer(split.weight).name;
    assert!(text.contains(&format!("note: the mapping spreads `{name}`")), "{text}");
    assert!(text.contains("the resident program runs unit i on core i"), "{text}");
    let p = compile(&g, &chip, &cores);
    assert_eq!(fp_cores(&p, "hidden+hidden_spikes"), BTreeSet::from([0]));
    assert_eq!(fp_cores(&p, "classes+class_spikes"), BTreeSet::from([1]));
}

#[test]
fn two_resident_units_on_one_core_stay_on_core_i_with_a_note() {
    let (g, chip) = (graph("digits"), two_cores_swapped());
    let mut m = mapping(&g, &chip);
    for unit in m.units.values_mut() {
        for s in &mut unit.slices {
            s.core = 1;
        }
    }
    let cores = CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::Mapped);
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("note: the mapping puts `hidden` (L1) and `classes` (L3) on core 1"), "{text}");
    let p = compile(&g, &chip, &cores);
    assert_eq!(fp_cores(&p, "hidden+hidden_spikes"), BTreeSet::from([0]));
}

#[test]
fn a_resident_unit_without_a_usable_core_stays_on_core_i_with_a_note() {
    let (g, chip) = (graph("digits"), two_cores_swapped());
    let mut m = mapping(&g, &chip);
    if let Some(unit) = m.units.values_mut().next() {
        unit.slices[0].core = 7;
    }
    let cores = CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::Mapped);
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        text.contains("note: the mapping gives `hidden` (L1) cores 7, but core 7 is not one of the chip's 2"),
        "{text}"
    );
    assert!(
        text.contains("note: the mapping gives `hidden` (L1) no core this chip has; the resident program"),
        "{text}"
    );
    let p = compile(&g, &chip, &cores);
    assert_eq!(fp_cores(&p, "hidden+hidden_spikes"), BTreeSet::from([0]));
}

#[test]
fn a_failed_mapping_falls_back_to_all_cores_with_a_note() {
    // Room for the program's DRAM but not for what the mapping budgets (it also counts an
    // FP32 gradient per weight): the mapping fails, the program is still generated.
    let mut chip = two_cores_swapped();
    chip.dram.capacity_bytes = 160_000;
    let g = graph("digits");
    let err = map_graph(&g, &chip, &MapOptions::default()).err();
    assert!(matches!(err, Some(MapError::DramCapacity { .. })), "{err:?}");
    let cores = CoreMap::choose(&g, &chip, PlacementChoice::Mapped);
    assert!(!cores.has_mapping());
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("note: the mapping failed (digits does not fit"), "{text}");
    assert_eq!(text.matches("note:").count(), 1, "one note: {text}");
    let p = compile(&g, &chip, &cores);
    assert_eq!(fp_cores(&p, "hidden+hidden_spikes"), BTreeSet::from([0]));
    // A staged model falls back to all cores in the same way.
    let (g, chip) = (graph("fc784_512"), ChipDesc::default());
    let failed = CoreMap::from_result(&g, &chip, Err(MapError::NoWeights("x".into())), PlacementChoice::Mapped);
    let all = CoreMap::choose(&g, &chip, PlacementChoice::AllCores);
    assert_eq!(compile(&g, &chip, &failed).to_bytes(), compile(&g, &chip, &all).to_bytes());
    let text = codegen::placement_text_with(&g, &chip, &failed).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.contains("note: the mapping failed") && text.contains("cores 0-19 (all)"), "{text}");
}

/// fc784_512's mapping with the first unit's cores changed by `edit`: its layers must go to
/// all cores with a note containing `says`, and the other unit keep its mapped cores.
fn check_unusable_cores(chip: &ChipDesc, edit: impl Fn(&mut Vec<snnc::map::CoreSlice>), says: &str) {
    let g = graph("fc784_512");
    let mut m = mapping(&g, &ChipDesc::default());
    let first = m.units.keys().next().copied().unwrap_or_else(|| panic!("a unit"));
    let kept = m.units.keys().nth(1).copied().unwrap_or_else(|| panic!("a second unit"));
    if let Some(u) = m.units.get_mut(&first) {
        edit(&mut u.slices);
    }
    let cores = CoreMap::from_mapping(&g, chip, &m, PlacementChoice::Mapped);
    let who = format!("the mapping gives `{}` ({first}) ", g.layer(first).name);
    let note = cores.notes().iter().find(|n| n.starts_with(&who) && n.contains(says));
    let note = note.unwrap_or_else(|| panic!("a note on {first}: {:?}", cores.notes()));
    assert!(note.ends_with("so its work goes to all cores"), "{note}");
    assert!(cores.cores_of(first).is_none());
    assert_eq!(cores.cores_of(kept), Some(&unit_cores(&m, kept)[..]));
    if chip.core_count() == ChipDesc::default().core_count() {
        let p = compile(&g, chip, &cores);
        let all: BTreeSet<u16> = (0..20).collect();
        assert_eq!(fp_cores(&p, &unit_symbol(&p, &g.layer(first).name)), all);
        let text = codegen::placement_text_with(&g, chip, &cores).unwrap_or_else(|e| panic!("{e}"));
        assert!(text.contains(&format!("note: {note}")) && text.contains("cores 0-19 (all)"), "{text}");
    }
}

#[test]
fn a_unit_on_a_core_the_chip_lacks_goes_to_all_cores() {
    let edit = |s: &mut Vec<snnc::map::CoreSlice>| s[0].core = 99;
    check_unusable_cores(&ChipDesc::default(), edit, ", but core 99 is not one of the chip's 20");
}

#[test]
fn a_unit_on_a_core_twice_goes_to_all_cores() {
    let edit = |s: &mut Vec<snnc::map::CoreSlice>| s[1].core = s[0].core;
    check_unusable_cores(&ChipDesc::default(), edit, "with one of them more than once");
}

#[test]
fn a_unit_without_cores_goes_to_all_cores() {
    check_unusable_cores(&ChipDesc::default(), |s| s.clear(), "no cores");
}

#[test]
fn a_unit_beyond_the_isa_core_ids_goes_to_all_cores() {
    let cores = (0..=65_536u32).map(|i| [(i % 256) as u16, (i / 256) as u16]).collect();
    let huge = ChipDesc { cores, ..ChipDesc::default() };
    let edit = |s: &mut Vec<snnc::map::CoreSlice>| s[0].core = 65_536;
    check_unusable_cores(&huge, edit, "core 65536, beyond the ISA's core ids");
}

#[test]
fn all_cores_ignores_the_mapping() {
    let (g, chip) = (graph("vgg_cifar_small"), ChipDesc::default());
    let m = mapping(&g, &chip);
    let cores = CoreMap::from_mapping(&g, &chip, &m, PlacementChoice::AllCores);
    assert!(!cores.has_mapping() && cores.notes().is_empty());
    let text = codegen::placement_text_with(&g, &chip, &cores).unwrap_or_else(|e| panic!("{e}"));
    assert!(text.starts_with("placement all-cores:") && !text.contains("(mapped)"), "{text}");
}
