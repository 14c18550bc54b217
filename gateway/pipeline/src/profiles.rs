//! The loaded mapping profiles, by name, swappable as a whole.
//!
//! Each message is mapped with one snapshot of the set (an `Arc`), so a reload
//! never changes profiles under a message being mapped, and a replay always
//! uses the profiles current at replay time.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use gateway_mapping::Profile;

/// One immutable snapshot of the loaded profiles.
type Snapshot = Arc<BTreeMap<String, Arc<Profile>>>;

/// Profiles by name (`epic`, `x12-278`, …).
#[derive(Clone, Default)]
pub struct ProfileSet {
    current: Arc<RwLock<Snapshot>>,
}

impl std::fmt::Debug for ProfileSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProfileSet")
            .field("names", &self.names())
            .finish()
    }
}

impl ProfileSet {
    /// A set holding `profiles`, keyed by [`Profile::name`].
    pub fn new(profiles: impl IntoIterator<Item = Profile>) -> Self {
        let set = ProfileSet::default();
        set.replace(profiles);
        set
    }

    /// Replaces every profile at once (a reload).
    pub fn replace(&self, profiles: impl IntoIterator<Item = Profile>) {
        let map: BTreeMap<String, Arc<Profile>> = profiles
            .into_iter()
            .map(|p| (p.name().to_owned(), Arc::new(p)))
            .collect();
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        *guard = Arc::new(map);
    }

    /// Adds or replaces one profile.
    pub fn insert(&self, profile: Profile) {
        let mut guard = match self.current.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut map = (**guard).clone();
        map.insert(profile.name().to_owned(), Arc::new(profile));
        *guard = Arc::new(map);
    }

    /// The profile called `name` in the current snapshot.
    pub fn get(&self, name: &str) -> Option<Arc<Profile>> {
        self.snapshot().get(name).cloned()
    }

    /// Names of the loaded profiles.
    pub fn names(&self) -> Vec<String> {
        self.snapshot().keys().cloned().collect()
    }

    fn snapshot(&self) -> Snapshot {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}
