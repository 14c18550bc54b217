//! What the demo reports about the store after its traffic: cases per
//! adapter/profile and status, messages per adapter and outcome, and what the
//! forwarder delivered to the platform sink.
//!
//! Read through a read-only [`Reader`], like `messages list` does, so the
//! figures are what an operator would see. Ids, profiles and counts only:
//! the demo prints no patient data.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;

use gateway_store::{EventState, MessageFilter, Reader};

use crate::daemon;

/// One stored case, as the demo needs it.
#[derive(Debug, Clone)]
pub struct CaseInfo {
    /// The case id.
    pub case_id: String,
    /// Owning adapter.
    pub adapter: String,
    /// Profile that produced it.
    pub profile: String,
    /// Case status (`requested`, …).
    pub status: String,
}

/// The store as the demo reports it.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every case, oldest first.
    pub cases: Vec<CaseInfo>,
    /// Messages per adapter, per state (`accepted`, `rejected`, …).
    pub messages: BTreeMap<String, BTreeMap<&'static str, usize>>,
    /// Events delivered to the platform sink.
    pub delivered: usize,
    /// Events still waiting for delivery.
    pub pending: u64,
    /// Dead-lettered events.
    pub dead: u64,
}

impl Snapshot {
    /// Reads the store of `data_dir` (an empty snapshot when it cannot be read).
    pub fn read(data_dir: &Path) -> Snapshot {
        let Ok(reader) = Reader::open(daemon::store_file(data_dir)) else {
            return Snapshot::default();
        };
        let mut snapshot = Snapshot::default();
        let messages = reader
            .list_messages(&MessageFilter {
                limit: Some(10_000),
                ..MessageFilter::default()
            })
            .unwrap_or_default();
        let mut seen = std::collections::BTreeSet::new();
        for message in messages.iter().rev() {
            *snapshot
                .messages
                .entry(message.adapter.clone())
                .or_default()
                .entry(message.state.as_str())
                .or_default() += 1;
            let Some(case_id) = &message.case_id else {
                continue;
            };
            if !seen.insert(case_id.clone()) {
                continue;
            }
            if let Ok(Some(record)) = reader.get_case(case_id) {
                snapshot.cases.push(CaseInfo {
                    case_id: case_id.clone(),
                    adapter: record.adapter,
                    profile: record.profile,
                    status: record.case.status.as_str().to_owned(),
                });
            }
        }
        snapshot.delivered = reader
            .list_events(Some(EventState::Delivered), 100_000)
            .map(|e| e.len())
            .unwrap_or(0);
        if let Ok(stats) = reader.outbox_stats() {
            snapshot.pending = stats.pending;
            snapshot.dead = stats.dead;
        }
        snapshot
    }

    /// `Cases:` — one line per adapter/profile with its count per status.
    pub fn write_cases(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut groups: BTreeMap<String, BTreeMap<&str, usize>> = BTreeMap::new();
        for case in &self.cases {
            *groups
                .entry(format!("{}/{}", case.adapter, case.profile))
                .or_default()
                .entry(case.status.as_str())
                .or_default() += 1;
        }
        writeln!(out, "Cases: {} in total", self.cases.len())?;
        for (group, statuses) in &groups {
            let total: usize = statuses.values().sum();
            let detail: Vec<String> = statuses.iter().map(|(s, n)| format!("{s} {n}")).collect();
            writeln!(out, "  {group:<28} {total:>3}  ({})", detail.join(", "))?;
        }
        Ok(())
    }

    /// `Messages:` — one line per adapter: accepted, rejected, duplicate, error.
    pub fn write_messages(&self, out: &mut impl Write) -> std::io::Result<()> {
        let total: usize = self.messages.values().flat_map(|m| m.values()).sum();
        let count = |state: &str| -> usize {
            self.messages
                .values()
                .filter_map(|m| m.get(state))
                .sum::<usize>()
        };
        writeln!(
            out,
            "Messages: {total} stored: {} accepted, {} rejected, {} duplicate, {} error",
            count("accepted"),
            count("rejected"),
            count("duplicate"),
            count("error"),
        )?;
        for (adapter, states) in &self.messages {
            let n = |s: &str| states.get(s).copied().unwrap_or(0);
            writeln!(
                out,
                "  {adapter:<9} {:>3} accepted, {} rejected, {} duplicate, {} error",
                n("accepted"),
                n("rejected"),
                n("duplicate"),
                n("error"),
            )?;
        }
        Ok(())
    }
}
