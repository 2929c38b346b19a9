//! Splits and batches: deterministic per seed, disjoint, covering every sample once; the last
//! partial batch dropped or padded as asked.

use sim::data::split::{batches, epoch_order};
use sim::data::{Batch, Dataset, Remainder, Split, digits};

#[test]
fn split_is_deterministic_disjoint_and_complete() {
    let a = Split::train_test(1797, 42);
    assert_eq!(a, Split::train_test(1797, 42), "same seed, same split");
    assert_ne!(a, Split::train_test(1797, 43), "another seed, another split");
    assert_eq!((a.train.len(), a.test.len()), (1438, 359), "20% of 1797 rounds to 359");
    let mut all: Vec<usize> = a.train.iter().chain(&a.test).copied().collect();
    all.sort_unstable();
    assert_eq!(all, (0..1797).collect::<Vec<_>>(), "every sample exactly once");
    assert!(a.train.windows(2).all(|w| w[0] < w[1]) && a.test.windows(2).all(|w| w[0] < w[1]));
}

#[test]
fn split_is_shuffled_and_keeps_the_classes_mixed() {
    let d = digits();
    let s = Split::train_test(d.len(), 7);
    assert_ne!(s.test, (0..s.test.len()).collect::<Vec<_>>(), "the test set is not the first rows");
    let test = d.subset(&s.test);
    assert!(test.class_counts().iter().all(|&c| c >= 20), "every class is tested: {:?}", test.class_counts());
}

#[test]
fn split_fraction_edges() {
    assert_eq!(Split::new(10, 0.0, 1).test, Vec::<usize>::new());
    assert_eq!(Split::new(10, 1.0, 1).train, Vec::<usize>::new());
    assert_eq!(Split::new(0, 0.2, 1), Split { train: vec![], test: vec![] });
}

#[test]
fn epoch_orders_are_permutations_that_change_per_epoch() {
    let train: Vec<usize> = (100..200).collect();
    let e0 = epoch_order(&train, 5, 0);
    assert_eq!(e0, epoch_order(&train, 5, 0));
    assert_ne!(e0, epoch_order(&train, 5, 1));
    let mut sorted = e0.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, train);
}

#[test]
fn drop_keeps_only_full_batches_and_pad_keeps_every_sample() {
    let order: Vec<usize> = (0..10).collect();
    let dropped = batches(&order, 4, Remainder::Drop);
    assert_eq!(dropped, [Batch::new(vec![0, 1, 2, 3], 4), Batch::new(vec![4, 5, 6, 7], 4)]);
    let padded = batches(&order, 4, Remainder::Pad);
    assert_eq!(padded.len(), 3);
    let last = &padded[2];
    assert_eq!((last.samples(), last.size(), last.valid()), ([8, 9].as_slice(), 4, 2));
    assert_eq!(last.mask(), [true, true, false, false]);
    assert_eq!((last.slot(1), last.slot(2)), (Some(9), None));
    assert!(batches(&order, 0, Remainder::Pad).is_empty());
    assert_eq!(batches(&order, 5, Remainder::Drop).len(), 2, "an exact multiple drops nothing");
}

#[test]
fn padded_batches_have_zero_inputs_and_no_labels() {
    let d = Dataset::new("t", vec!["a".into(), "b".into()], 3, vec![2, 0], vec![0.1, 0.2, 0.3, 0.4]).expect("valid");
    let b = Batch::new(vec![1], 3);
    assert_eq!(d.batch_values(&b), [0.3, 0.4, 0.0, 0.0, 0.0, 0.0]);
    assert_eq!(d.batch_labels(&b), [Some(0), None, None]);
}

#[test]
fn datasets_reject_inconsistent_parts() {
    let names = vec!["a".to_string()];
    let err = Dataset::new("mem", names.clone(), 2, vec![0, 3], vec![0.0, 0.0]).expect_err("label 3 of 2 classes");
    assert_eq!(err.to_string(), "mem:3: column 1 (`label`): label 3 is out of range 0..2 (2 classes)");
    let err = Dataset::new("mem", names, 2, vec![0], vec![0.0, 0.0]).expect_err("too many values");
    assert_eq!(err.to_string(), "invalid data set: 2 values for 1 samples of 1 features");
}
