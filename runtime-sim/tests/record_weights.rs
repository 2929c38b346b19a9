//! Trained weights survive a safetensors write and read unchanged (what `--resume` relies
//! on), the bytes are deterministic and readable by any safetensors reader, and bad files get
//! errors that say what is wrong.

use half::f16;
use safetensors::SafeTensors;
use sim::record::{Tensor, TensorData, Weights};

fn sample_weights() -> Weights {
    let w: Vec<f16> = (0..12).map(|i| f16::from_f32(i as f32 * 0.125 - 0.75)).collect();
    let b: Vec<f32> = vec![0.1, -2.5, 3.0e-8];
    Weights::new(
        Some("digits".into()),
        vec![
            Tensor { name: "fc1.weight".into(), shape: vec![3, 4], data: TensorData::F16(w) },
            Tensor { name: "fc1.bias".into(), shape: vec![3], data: TensorData::F32(b) },
        ],
    )
    .expect("consistent")
}

#[test]
fn weights_round_trip_through_a_file() {
    let w = sample_weights();
    let path = std::env::temp_dir().join(format!("snnc-weights-{}.safetensors", std::process::id()));
    w.save(&path).expect("save");
    let back = Weights::load(&path).expect("load");
    std::fs::remove_file(&path).expect("remove");
    assert_eq!(back, w);
    assert_eq!(back.model(), Some("digits"));
    let fc1 = back.get("fc1.weight").expect("by name");
    assert_eq!(fc1.shape, [3, 4]);
    assert_eq!(fc1.data.to_f32()[11], 0.625);
    assert!(back.get("fc2.weight").is_none());
}

#[test]
fn bytes_are_deterministic_standard_safetensors() {
    let bytes = sample_weights().to_bytes().expect("serialise");
    assert_eq!(bytes, sample_weights().to_bytes().expect("serialise"));
    let st = SafeTensors::deserialize(&bytes).expect("any safetensors reader parses it");
    let view = st.tensor("fc1.bias").expect("tensor");
    assert_eq!((view.dtype(), view.shape()), (safetensors::Dtype::F32, [3].as_slice()));
    assert_eq!(&view.data()[4..8], (-2.5f32).to_le_bytes());
    let (_, meta) = SafeTensors::read_metadata(&bytes).expect("header");
    let snnc = meta.metadata().as_ref().and_then(|m| m.get("snnc")).expect("snnc metadata");
    assert_eq!(snnc, r#"{"format":"snnc-weights/1","model":"digits"}"#);
}

#[test]
fn foreign_files_load_without_a_model_name() {
    let data = [1.0f32, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>();
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::F32, vec![2], &data).expect("view");
    let bytes = safetensors::serialize([("w", view)], None).expect("serialise");
    let w = Weights::from_bytes(&bytes, "other.safetensors").expect("loads");
    assert_eq!((w.model(), w.tensors().len()), (None, 1));
}

#[test]
fn bad_weights_are_rejected_with_reasons() {
    let err = Weights::from_bytes(b"not a safetensors file", "x.safetensors").expect_err("garbage");
    assert!(err.to_string().starts_with("x.safetensors: not a valid safetensors file"), "{err}");
    let err = Weights::from_bytes(b"  {\"format\": \"snnc-run/1\"}", "x.run.json").expect_err("a run record");
    assert!(err.to_string().starts_with("x.run.json: is JSON, not safetensors weights (the run record?"), "{err}");
    let data = [0u8; 4];
    let view = safetensors::tensor::TensorView::new(safetensors::Dtype::I32, vec![1], &data).expect("view");
    let bytes = safetensors::serialize([("steps", view)], None).expect("serialise");
    let err = Weights::from_bytes(&bytes, "x.safetensors").expect_err("integer tensor");
    assert_eq!(err.to_string(), "x.safetensors: tensor `steps` has dtype I32; snnc reads F16 and F32 weights");
    let t = Tensor { name: "w".into(), shape: vec![2, 2], data: TensorData::F32(vec![0.0; 3]) };
    let err = Weights::new(None, vec![t]).expect_err("shape mismatch");
    assert_eq!(err.to_string(), "weights: tensor `w` has shape [2, 2] but 3 values");
    let t = Tensor { name: "w".into(), shape: vec![1], data: TensorData::F32(vec![0.0]) };
    assert!(Weights::new(None, vec![t.clone(), t]).is_err(), "duplicate names");
}

#[test]
fn a_failed_save_leaves_no_file() {
    let dir = std::env::temp_dir().join(format!("snnc-missing-dir-{}", std::process::id()));
    let path = dir.join("w.safetensors");
    let err = sample_weights().save(&path).expect_err("the folder does not exist");
    assert!(err.to_string().starts_with(&path.display().to_string()), "{err}");
    assert!(!dir.exists());
}
