//! Which data `snnc train` trains on, and how the model says to encode it.
//!
//! `--data digits` is the bundled digits set (no file needed; resized by nearest neighbour
//! and repeated over channels for a larger `[C, H, W]` image input), `--data events` the
//! synthetic DVS-style generator sized from the model's `[2, H, W]` input, anything else a
//! CSV file. Without `--data` a spiking `[2, H, W]` input gets events and every other
//! model the digits. A file that cannot be read exits with status 2; a file with bad
//! content, or data that do not fit the model, with status 1 and the place of the problem.

use super::{Failure, TrainArgs};
use sim::data::{Bernoulli, CsvOptions, DataError, Dataset, Encoding, EventConfig, SyntheticEvents};
use sim::train::TrainData;
use snnc::graph::LayerGraph;
use snnc::model;

/// Samples per class of the synthetic event data.
const EVENT_SAMPLES_PER_CLASS: usize = 40;

/// Loads the data `--data` names (or the model's default), cut to `--samples`.
pub fn load(args: &TrainArgs, graph: &LayerGraph) -> Result<TrainData, Failure> {
    let shape = &graph.input().shape;
    let events_shape = shape.len() == 3 && shape[0] == 2;
    let default = if graph.encoding() == model::Encoding::Spikes && events_shape { "events" } else { "digits" };
    let which = args.data.as_deref().unwrap_or(default);
    let encoding = encoding(graph.encoding()).map_err(|e| data_failure(&e))?;
    let data = match which {
        "digits" => TrainData::Static { set: digits(shape).map_err(|e| data_failure(&e))?, encoding },
        "events" => events(graph, args.seed, args.samples).map_err(|e| data_failure(&e))?,
        path => {
            let options = CsvOptions { classes: Some(graph.classes() as usize), ..CsvOptions::default() };
            let set = Dataset::from_csv_path(path, &options).map_err(|e| data_failure(&e))?;
            TrainData::Static { set, encoding }
        }
    };
    Ok(match (data, args.samples) {
        (TrainData::Static { set, encoding }, Some(n)) => {
            let keep: Vec<usize> = (0..n.min(set.len())).collect();
            TrainData::Static { set: set.subset(&keep), encoding }
        }
        (data, _) => data,
    })
}

/// The bundled digits, resized to an image model's `[C, H, W]` input when it is not 8x8.
fn digits(shape: &[u32]) -> Result<Dataset, DataError> {
    let set = sim::data::digits();
    match *shape {
        [c, h, w] if (c * h * w) as usize != set.features() => set.resized(c as usize, h as usize, w as usize),
        _ => Ok(set),
    }
}

/// The model's input encoding as the simulator's encoders take it.
fn encoding(e: model::Encoding) -> Result<Encoding, DataError> {
    Ok(match e {
        model::Encoding::Spikes => Encoding::Spikes,
        model::Encoding::Bernoulli { max_rate, seed } => Encoding::Bernoulli(Bernoulli::new(max_rate, seed)?),
        model::Encoding::Current { scale } => Encoding::Direct { scale: scale as f32 },
    })
}

/// Synthetic events in the model's input size, timesteps and classes: `samples` in all
/// (rounded down to whole classes, at least one sample per class), else 40 per class.
fn events(graph: &LayerGraph, seed: u64, samples: Option<usize>) -> Result<TrainData, DataError> {
    let shape = &graph.input().shape;
    if graph.encoding() != model::Encoding::Spikes || shape.len() != 3 || shape[0] != 2 {
        let why = format!("event data need a spiking input of shape [2, H, W], the model's is {shape:?}");
        return Err(DataError::Invalid { what: "data set", why });
    }
    let config = EventConfig {
        height: shape[1] as usize,
        width: shape[2] as usize,
        timesteps: graph.timesteps as usize,
        classes: graph.classes() as usize,
        samples_per_class: samples.map_or(EVENT_SAMPLES_PER_CLASS, |n| (n / graph.classes().max(1) as usize).max(1)),
        noise: 0.001,
        seed,
    };
    Ok(TrainData::Events(SyntheticEvents::new(config)?))
}

/// Unreadable files exit with status 2, bad content with status 1.
fn data_failure(e: &DataError) -> Failure {
    match e {
        DataError::Io { .. } => Failure::Io(e.to_string()),
        _ => Failure::Input(format!("error: {e}\n")),
    }
}
