//! Which core each bench thread runs on: `--cores`, else the tuning profile's bench cores, else
//! unpinned. Threads take the cores round-robin.

use core_affinity::CoreId;

/// The cores of a run.
#[derive(Debug, Clone, Default)]
pub struct CorePlan {
    cores: Vec<usize>,
}

impl CorePlan {
    /// A plan over these core ids (empty: no pinning).
    pub fn new(cores: Vec<usize>) -> Self {
        CorePlan { cores }
    }

    /// The cores, in order.
    pub fn cores(&self) -> &[usize] {
        &self.cores
    }

    /// The core of the `index`-th thread.
    pub fn core_for(&self, index: usize) -> Option<usize> {
        (!self.cores.is_empty()).then(|| self.cores[index % self.cores.len()])
    }

    /// Pins the calling thread; returns whether it worked (a missing core is reported, not fatal).
    pub fn pin_current(core: Option<usize>) -> bool {
        match core {
            Some(id) => core_affinity::set_for_current(CoreId { id }),
            None => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_take_cores_round_robin() {
        let plan = CorePlan::new(vec![1, 3]);
        assert_eq!(plan.core_for(0), Some(1));
        assert_eq!(plan.core_for(1), Some(3));
        assert_eq!(plan.core_for(2), Some(1));
        assert_eq!(CorePlan::default().core_for(5), None);
    }
}
