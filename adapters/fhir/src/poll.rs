//! `_lastUpdated` polling with a durable watermark: a restart neither misses nor
//! repeats an order.
//!
//! ## The watermark
//! [`Watermark`] holds `high`, the latest `meta.lastUpdated` fully handled, and
//! `seen`, the `ServiceRequest/id/_history/versionId` keys handled whose
//! `lastUpdated` is at or after the query bound `high − overlap`. Each poll
//! searches `_lastUpdated=ge(high − overlap)&_sort=_lastUpdated`.
//!
//! * **Why `ge` and a seen-set, not `gt`.** Several versions can share one
//!   `lastUpdated` instant (bulk edits, millisecond clocks). With `gt high`, an
//!   order stamped at the same instant as the last one handled, but returned
//!   after a restart or on the next page, would be missed. With `ge high` alone
//!   the last one would be handed to the pipeline again. `ge` plus the set of
//!   versions already handled at (or after) the bound does neither; the set stays
//!   small because entries older than the bound are pruned.
//! * **Overlap.** Some servers make a version visible after later-stamped ones
//!   (the stamp is taken when the transaction starts). `overlap` re-reads that
//!   window; the seen-set filters what was already handled. Default 0.
//! * **Order of effects.** An order is first committed by the pipeline (raw
//!   bundle + case event in one transaction), then the watermark is saved.
//!   A crash between the two re-submits that one order; the pipeline recognises
//!   it (same sender, control id and content hash) and emits no second event.
//!   So the "repeat" window is a single already-deduplicated message.
//! * **Paging.** With `_sort=_lastUpdated`, after a page that made progress the
//!   poller re-queries from the advanced watermark (keyset paging) instead of
//!   following the server's offset-based `next` link: if an order is updated
//!   during a pass, offset pages shift and a `next` link could skip one. It
//!   follows `next` only when a page brought nothing new (e.g. more versions at
//!   one instant than a page holds). Vendors without `_sort` are paged by `next`
//!   and the watermark's `high` advances only when the pass completes; the
//!   seen-set keeps a restart mid-pass from repeating work.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::GatewayError;
use gateway_core::adapter::{BoxFuture, InboundMessage, IntakeOutcome, IntakePipeline};
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::assemble::{AssembledOrder, Assembler};
use crate::bundle::parse_bundle;
use crate::client::FhirClient;
use crate::profile::VendorProfile;

/// The adapter name used in messages, metrics and cases.
pub const ADAPTER: &str = gateway_core::adapter::name::FHIR;

/// Progress of polling one EHR, stored durably between polls.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Watermark {
    /// Latest `meta.lastUpdated` (RFC 3339) fully handled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
    /// Version keys handled at or after the query bound → their `lastUpdated`.
    #[serde(default)]
    pub seen: BTreeMap<String, String>,
}

/// Durable storage of watermarks, one per key (`fhir:<profile>:<base url>`).
/// The daemon backs it with the store; [`FileWatermarkStore`] is a file per key.
pub trait WatermarkStore: Send + Sync {
    /// The saved watermark, if any.
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Watermark>, GatewayError>>;
    /// Saves durably (returns after the data is on disk).
    fn save<'a>(
        &'a self,
        key: &'a str,
        watermark: &'a Watermark,
    ) -> BoxFuture<'a, Result<(), GatewayError>>;
}

/// Watermarks as JSON files in a directory, replaced atomically
/// (write temp, fsync, rename, fsync the directory).
#[derive(Debug, Clone)]
pub struct FileWatermarkStore {
    dir: PathBuf,
}

impl FileWatermarkStore {
    /// A store in `dir` (created on first save).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileWatermarkStore { dir: dir.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        let safe: String = key
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        self.dir.join(format!("{safe}.watermark.json"))
    }
}

fn io_error(what: &str, e: &std::io::Error) -> GatewayError {
    GatewayError::internal(true, format!("watermark {what}: {}", e.kind()))
}

impl WatermarkStore for FileWatermarkStore {
    fn load<'a>(&'a self, key: &'a str) -> BoxFuture<'a, Result<Option<Watermark>, GatewayError>> {
        Box::pin(async move {
            let path = self.path(key);
            match tokio::fs::read(&path).await {
                Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
                    GatewayError::internal(false, format!("watermark file is corrupt: {e}"))
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(io_error("read", &e)),
            }
        })
    }

    fn save<'a>(
        &'a self,
        key: &'a str,
        watermark: &'a Watermark,
    ) -> BoxFuture<'a, Result<(), GatewayError>> {
        Box::pin(async move {
            let path = self.path(key);
            let bytes = serde_json::to_vec_pretty(watermark)
                .map_err(|e| GatewayError::internal(false, format!("watermark encode: {e}")))?;
            let dir = self.dir.clone();
            tokio::task::spawn_blocking(move || -> std::io::Result<()> {
                use std::io::Write;
                std::fs::create_dir_all(&dir)?;
                let tmp = path.with_extension("json.tmp");
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&bytes)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)?;
                std::fs::File::open(&dir)?.sync_all()
            })
            .await
            .map_err(|_| GatewayError::internal(true, "watermark writer task failed"))?
            .map_err(|e| io_error("write", &e))
        })
    }
}

/// Polling knobs.
#[derive(Debug, Clone)]
pub struct PollSettings {
    /// Re-read window before `high` (see the module docs).
    pub overlap: Duration,
    /// Upper bound on pages fetched in one pass.
    pub max_pages: usize,
    /// `_count` per page.
    pub page_size: u32,
}

impl Default for PollSettings {
    fn default() -> Self {
        PollSettings {
            overlap: Duration::ZERO,
            max_pages: 1000,
            page_size: 50,
        }
    }
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PollReport {
    /// Search pages fetched.
    pub pages: usize,
    /// Orders handed to the pipeline.
    pub submitted: usize,
    /// Orders skipped because the watermark had them.
    pub already_seen: usize,
    /// Pipeline answers.
    pub accepted: usize,
    /// Pipeline answers.
    pub duplicates: usize,
    /// Pipeline answers (kept with the reason).
    pub rejected: usize,
}

/// Polls one EHR for new or changed ServiceRequests.
pub struct Poller {
    client: Arc<FhirClient>,
    vendor: Arc<VendorProfile>,
    profile: String,
    pipeline: Arc<dyn IntakePipeline>,
    store: Arc<dyn WatermarkStore>,
    key: String,
    settings: PollSettings,
}

impl Poller {
    /// A poller for `profile` (the mapping profile's name) at the client's EHR.
    pub fn new(
        client: Arc<FhirClient>,
        vendor: Arc<VendorProfile>,
        profile: impl Into<String>,
        pipeline: Arc<dyn IntakePipeline>,
        store: Arc<dyn WatermarkStore>,
        settings: PollSettings,
    ) -> Self {
        let profile = profile.into();
        let key = format!("fhir:{profile}:{}", client.base_str());
        Poller {
            client,
            vendor,
            profile,
            pipeline,
            store,
            key,
            settings,
        }
    }

    /// The watermark key.
    pub fn key(&self) -> &str {
        &self.key
    }

    fn params(&self, watermark: &Watermark) -> Vec<(String, String)> {
        let search = &self.vendor.search;
        let mut params = vec![("_count".to_owned(), self.settings.page_size.to_string())];
        if search.last_updated
            && let Some(bound) = query_bound(watermark, self.settings.overlap)
        {
            params.push(("_lastUpdated".to_owned(), format!("ge{bound}")));
        }
        if search.sort_last_updated {
            params.push(("_sort".to_owned(), "_lastUpdated".to_owned()));
        }
        for include in &search.include {
            params.push(("_include".to_owned(), include.clone()));
        }
        for revinclude in &search.revinclude {
            params.push(("_revinclude".to_owned(), revinclude.clone()));
        }
        for (k, v) in &search.params {
            params.push((k.clone(), v.clone()));
        }
        params
    }

    /// One pass: fetch everything new since the watermark, hand each order to
    /// the pipeline, advance the watermark after each commit.
    pub async fn poll_once(&self) -> Result<PollReport, GatewayError> {
        let mut watermark = self.store.load(&self.key).await?.unwrap_or_default();
        let sorted = self.vendor.search.sort_last_updated && self.vendor.search.last_updated;
        let mut report = PollReport::default();
        let mut assembler = Assembler::new(&self.client, &self.vendor);
        let mut pass_high = watermark.high.as_deref().and_then(parse_instant);
        let mut page = self
            .client
            .search("ServiceRequest", &self.params(&watermark))
            .await?;
        let mut complete = true;
        loop {
            report.pages += 1;
            let orders = assembler.assemble_page(&page).await?;
            let mut progressed = false;
            for order in orders {
                let key = order.version_key();
                if watermark.seen.contains_key(&key) {
                    report.already_seen += 1;
                    continue;
                }
                self.submit(&order, &mut report).await?;
                let stamp = order.last_updated.clone().unwrap_or_default();
                let instant = parse_instant(&stamp);
                watermark.seen.insert(key, stamp);
                if let Some(t) = instant {
                    pass_high = Some(pass_high.map_or(t, |h| h.max(t)));
                    if sorted {
                        advance(&mut watermark, t, self.settings.overlap);
                    }
                }
                self.store.save(&self.key, &watermark).await?;
                progressed = true;
            }
            if report.pages >= self.settings.max_pages {
                tracing::warn!(profile = %self.profile, pages = report.pages, "poll pass stopped at the page limit");
                complete = false;
                break;
            }
            let next = if sorted && progressed {
                Some(
                    self.client
                        .search("ServiceRequest", &self.params(&watermark))
                        .await?,
                )
            } else {
                self.client.next_page(&page).await?
            };
            match next {
                Some(p) => page = p,
                None => break,
            }
        }
        // Unsorted results: only a complete pass proves nothing older is left.
        if let Some(t) = pass_high
            && (sorted || complete)
        {
            advance(&mut watermark, t, self.settings.overlap);
        }
        watermark.seen.retain(|_, stamp| !stamp.is_empty());
        self.store.save(&self.key, &watermark).await?;
        tracing::info!(
            profile = %self.profile,
            pages = report.pages,
            submitted = report.submitted,
            already_seen = report.already_seen,
            rejected = report.rejected,
            "FHIR poll pass done"
        );
        Ok(report)
    }

    async fn submit(
        &self,
        order: &AssembledOrder,
        report: &mut PollReport,
    ) -> Result<(), GatewayError> {
        let raw = serde_json::to_vec(&order.bundle)
            .map_err(|e| GatewayError::internal(false, format!("bundle encode: {e}")))?;
        let message = inbound_message(&self.profile, raw, self.client.base_str());
        let outcome = self.pipeline.submit(message).await?;
        report.submitted += 1;
        // `ehr_gateway_messages_total` is counted once, by the pipeline.
        match outcome {
            IntakeOutcome::Accepted { .. } | IntakeOutcome::Kept { .. } => report.accepted += 1,
            IntakeOutcome::Duplicate { .. } => report.duplicates += 1,
            IntakeOutcome::Rejected { .. } => {
                report.rejected += 1;
                tracing::warn!(service_request = %order.id, "order bundle rejected; kept for replay");
            }
        }
        Ok(())
    }
}

/// `high − overlap`, formatted for the query (exact: nanoseconds kept).
fn query_bound(watermark: &Watermark, overlap: Duration) -> Option<String> {
    let high = parse_instant(watermark.high.as_deref()?)?;
    let span = jiff::SignedDuration::try_from(overlap).ok()?;
    Some(high.checked_sub(span).unwrap_or(high).to_string())
}

/// Moves `high` forward to `t` and prunes seen entries below the new bound.
fn advance(watermark: &mut Watermark, t: Timestamp, overlap: Duration) {
    let current = watermark.high.as_deref().and_then(parse_instant);
    if current.is_none_or(|c| t > c) {
        watermark.high = Some(t.to_string());
    }
    let high = watermark.high.as_deref().and_then(parse_instant);
    let bound = high.and_then(|h| {
        jiff::SignedDuration::try_from(overlap)
            .ok()
            .and_then(|o| h.checked_sub(o).ok())
    });
    if let Some(bound) = bound {
        watermark
            .seen
            .retain(|_, stamp| parse_instant(stamp).is_none_or(|s| s >= bound));
    }
}

/// Parses a FHIR instant; `None` for anything else.
pub fn parse_instant(text: &str) -> Option<Timestamp> {
    text.parse::<Timestamp>().ok()
}

/// The value of `meta.lastUpdated` of a resource.
pub fn last_updated(resource: &Value) -> Option<Timestamp> {
    resource
        .pointer("/meta/lastUpdated")
        .and_then(Value::as_str)
        .and_then(parse_instant)
}

/// The message the poller submits for an assembled order bundle `raw`
/// fetched from `sender` (the FHIR base URL): the parsed bundle carries the
/// sender, which is part of the duplicate key. The conformance runner
/// submits through this too, so it runs the poller's intake path.
pub fn inbound_message(profile: &str, raw: Vec<u8>, sender: &str) -> InboundMessage {
    let parsed = parse_bundle(&raw).map(|mut doc| {
        doc.meta.sender = Some(sender.to_owned());
        doc
    });
    InboundMessage {
        adapter: gateway_core::adapter::AdapterName::FHIR,
        profile: profile.to_owned(),
        raw,
        received_at: Timestamp::now(),
        peer: Some(sender.to_owned()),
        parsed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_keeps_only_entries_at_or_after_the_bound() {
        let mut w = Watermark::default();
        for (k, t) in [
            ("a", "2026-01-01T00:00:00Z"),
            ("b", "2026-01-01T00:00:01Z"),
            ("c", "2026-01-01T00:00:01Z"),
        ] {
            w.seen.insert(k.into(), t.into());
        }
        advance(
            &mut w,
            parse_instant("2026-01-01T00:00:01Z").expect("t"),
            Duration::ZERO,
        );
        assert_eq!(w.high.as_deref(), Some("2026-01-01T00:00:01Z"));
        assert_eq!(w.seen.keys().collect::<Vec<_>>(), ["b", "c"]);
        // An older instant never moves high back.
        advance(
            &mut w,
            parse_instant("2025-01-01T00:00:00Z").expect("t"),
            Duration::ZERO,
        );
        assert_eq!(w.high.as_deref(), Some("2026-01-01T00:00:01Z"));
        assert_eq!(
            query_bound(&w, Duration::from_millis(1500)).as_deref(),
            Some("2025-12-31T23:59:59.5Z")
        );
    }

    #[tokio::test]
    async fn file_store_round_trips() {
        let dir = tempfile::tempdir().expect("tmp");
        let store = FileWatermarkStore::new(dir.path());
        assert_eq!(store.load("fhir:x:http://h/").await.expect("load"), None);
        let mut w = Watermark {
            high: Some("2026-01-01T00:00:00Z".into()),
            ..Watermark::default()
        };
        w.seen.insert(
            "ServiceRequest/a/_history/1".into(),
            "2026-01-01T00:00:00Z".into(),
        );
        store.save("fhir:x:http://h/", &w).await.expect("save");
        assert_eq!(store.load("fhir:x:http://h/").await.expect("load"), Some(w));
    }
}
