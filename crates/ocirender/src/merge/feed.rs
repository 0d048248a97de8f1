//! Layers that arrive while a merge runs.
//!
//! A caller that downloads an image knows its layers (their paths, sizes
//! and digests) from the manifest before their bytes are there. It can
//! start the merge at once and tell a [`LayerFeed`] as each download
//! finishes, in whatever order they finish. The merge reads newest first:
//! each layer's reader thread waits until that layer has arrived, so the
//! merge of the top layers overlaps the download of the lower ones, and
//! nothing is buffered for layers that arrive early (they are files).

use crate::error::{err, Result};
use std::fmt;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Makes a feed for a merge of `layers` layers: the [`LayerFeed`] for the
/// code that downloads them, the [`Arrivals`] for the merge
/// ([`crate::merge::Merge::arriving`]).
pub fn layer_feed(layers: usize) -> (LayerFeed, Arrivals) {
    let shared = Arc::new(Shared {
        state: Mutex::new(State {
            layers: vec![Slot::Pending; layers],
            feeders: 1,
        }),
        changed: Condvar::new(),
    });
    let arrivals = Arrivals {
        shared: Arc::clone(&shared),
    };
    (LayerFeed { shared }, arrivals)
}

/// Tells a merge that its layers have arrived. Clone it for each
/// downloading thread. When every clone is dropped, a layer that has not
/// arrived never will, and the merge fails when it reaches it.
pub struct LayerFeed {
    shared: Arc<Shared>,
}

/// The merge's side of a [`layer_feed`].
pub struct Arrivals {
    shared: Arc<Shared>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

struct State {
    layers: Vec<Slot>,
    /// Live [`LayerFeed`] handles: with none left, nothing more arrives.
    feeders: usize,
}

#[derive(Clone)]
enum Slot {
    Pending,
    Arrived,
    Failed(String),
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A feeder that panicked leaves the state whole: slots are set in
        // one assignment.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn set(&self, index: usize, slot: Slot) -> Result<()> {
        let mut state = self.lock();
        let count = state.layers.len();
        let Some(current) = state.layers.get_mut(index) else {
            return Err(err!(
                "layer index {index} is out of range (the merge has {count} layers)"
            ));
        };
        if !matches!(current, Slot::Pending) {
            return Err(err!("layer {} was already fed", index + 1));
        }
        *current = slot;
        self.changed.notify_all();
        Ok(())
    }
}

impl LayerFeed {
    /// Layer `index` (base first, from 0) is complete at the path its
    /// [`crate::blob::layer_ref::LayerRef`] names: the merge may read it.
    pub fn arrived(&self, index: usize) -> Result<()> {
        self.shared.set(index, Slot::Arrived)
    }

    /// Layer `index` will never arrive, because of `why`: the merge fails
    /// with that reason when it reaches the layer.
    pub fn failed(&self, index: usize, why: impl fmt::Display) -> Result<()> {
        self.shared.set(index, Slot::Failed(why.to_string()))
    }
}

impl Clone for LayerFeed {
    fn clone(&self) -> Self {
        self.shared.lock().feeders += 1;
        LayerFeed {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Drop for LayerFeed {
    fn drop(&mut self) {
        self.shared.lock().feeders -= 1;
        self.shared.changed.notify_all();
    }
}

impl Arrivals {
    /// How many layers the feed was made for.
    pub fn len(&self) -> usize {
        self.shared.lock().layers.len()
    }

    /// Whether the feed was made for no layers.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until layer `index` has arrived; fails if it never will.
    pub(crate) fn wait(&self, index: usize) -> Result<()> {
        let mut state = self.shared.lock();
        loop {
            match state.layers.get(index) {
                None => return Err(err!("layer {} was not in the feed", index + 1)),
                Some(Slot::Arrived) => return Ok(()),
                Some(Slot::Failed(why)) => return Err(err!("never arrived: {why}")),
                Some(Slot::Pending) if state.feeders == 0 => {
                    return Err(err!("never arrived: the feed ended before it"))
                }
                Some(Slot::Pending) => {}
            }
            state = self
                .shared
                .changed
                .wait(state)
                .unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }

    /// A gate for a layer's reader thread: waits for layer `index`.
    pub(crate) fn gate(&self, index: usize) -> crate::blob::decode::Gate {
        let shared = Arc::clone(&self.shared);
        Box::new(move || Arrivals { shared }.wait(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_layer_fed_from_another_thread_wakes_its_waiter() {
        let (feed, arrivals) = layer_feed(2);
        let waiter = std::thread::spawn(move || arrivals.wait(1));
        std::thread::sleep(Duration::from_millis(20));
        feed.arrived(1).unwrap();
        waiter.join().unwrap().unwrap();
    }

    #[test]
    fn a_dropped_feed_fails_the_layers_still_pending() {
        let (feed, arrivals) = layer_feed(2);
        feed.arrived(0).unwrap();
        let other = feed.clone();
        drop(feed);
        other.failed(1, "HTTP 404").unwrap();
        drop(other);
        arrivals.wait(0).unwrap();
        assert_eq!(
            arrivals.wait(1).unwrap_err().to_string(),
            "never arrived: HTTP 404"
        );
        let (feed, arrivals) = layer_feed(1);
        drop(feed);
        assert_eq!(
            arrivals.wait(0).unwrap_err().to_string(),
            "never arrived: the feed ended before it"
        );
    }

    #[test]
    fn a_layer_is_fed_once_and_within_range() {
        let (feed, _arrivals) = layer_feed(1);
        feed.arrived(0).unwrap();
        assert_eq!(
            feed.arrived(0).unwrap_err().to_string(),
            "layer 1 was already fed"
        );
        assert_eq!(
            feed.failed(3, "x").unwrap_err().to_string(),
            "layer index 3 is out of range (the merge has 1 layers)"
        );
    }
}
