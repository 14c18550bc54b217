//! `/metrics` after known traffic: the real `ehr-gateway run` binary, an MLLP
//! listener on a real socket, the X12 file drop, a file sink; three good HL7
//! orders, one exact duplicate, one unsupported message type and one X12 278
//! request file — then exact counts, histogram counts and gauges from a
//! scrape over HTTP. Series that exist before any
//! traffic (zero-initialised) are checked first.

mod support;

use std::collections::BTreeMap;
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use support::Daemon;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The epic sample with MSH-10 = `id` and, when given, MSH-9 = `kind`.
fn message(template: &[u8], id: &str, kind: Option<&str>) -> Vec<u8> {
    let text = String::from_utf8_lossy(template);
    let (msh, rest) = text.split_once('\r').expect("segments end with CR");
    let mut fields: Vec<&str> = msh.split('|').collect();
    fields[9] = id;
    if let Some(kind) = kind {
        fields[8] = kind;
    }
    format!("{}\r{}", fields.join("|"), rest).into_bytes()
}

use support::mllp_exchange as exchange;

/// One scrape: `name` → list of (labels, value).
type Scrape = BTreeMap<String, Vec<(BTreeMap<String, String>, f64)>>;

fn parse(text: &str) -> Scrape {
    let mut out = Scrape::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("value");
        let value: f64 = value.parse().expect("number");
        let (name, labels) = match series.split_once('{') {
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').expect("closing brace");
                let labels = inner
                    .split(',')
                    .filter(|p| !p.is_empty())
                    .map(|p| {
                        let (k, v) = p.split_once('=').expect("label");
                        (k.to_owned(), v.trim_matches('"').to_owned())
                    })
                    .collect();
                (name.to_owned(), labels)
            }
            None => (series.to_owned(), BTreeMap::new()),
        };
        out.entry(name).or_default().push((labels, value));
    }
    out
}

/// The value of `name` with exactly `labels` (other label sets ignored).
fn value(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let want: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    scrape
        .get(name)?
        .iter()
        .find(|(l, _)| *l == want)
        .map(|(_, v)| *v)
}

fn sum(scrape: &Scrape, name: &str, filter: &[(&str, &str)]) -> f64 {
    scrape
        .get(name)
        .map(|series| {
            series
                .iter()
                .filter(|(l, _)| {
                    filter
                        .iter()
                        .all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
                })
                .map(|(_, v)| v)
                .sum()
        })
        .unwrap_or(0.0)
}

fn scrape(daemon: &Daemon) -> (String, Scrape) {
    let text = http::get(&daemon.url("/metrics"));
    let parsed = parse(&text);
    (text, parsed)
}

mod http {
    /// A plain HTTP/1.1 GET over a std socket (the daemon's metrics are open).
    pub fn get(url: &str) -> String {
        use std::io::{Read, Write};
        let rest = url.strip_prefix("http://").expect("http url");
        let (host, path) = rest.split_once('/').expect("path");
        let mut stream = std::net::TcpStream::connect(host).expect("connect");
        write!(
            stream,
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .expect("request");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("response");
        let (head, body) = response.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 200"), "{head}");
        if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_owned()
        }
    }

    fn dechunk(mut body: &str) -> String {
        let mut out = String::new();
        loop {
            let (size, rest) = body.split_once("\r\n").expect("chunk size");
            let size = usize::from_str_radix(size.trim(), 16).expect("hex size");
            if size == 0 {
                return out;
            }
            out.push_str(&rest[..size]);
            body = &rest[size + 2..];
        }
    }
}

/// Scrapes until `done` holds (the forwarder and gauges run on their own
/// clocks), failing with the last scrape after `limit`.
fn scrape_until(daemon: &Daemon, limit: Duration, done: impl Fn(&Scrape) -> bool) -> Scrape {
    let deadline = Instant::now() + limit;
    loop {
        let (text, parsed) = scrape(daemon);
        if done(&parsed) {
            return parsed;
        }
        assert!(
            Instant::now() < deadline,
            "condition not met; last scrape:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn exact_counts_after_known_hl7_traffic() {
    let dir = tempfile::tempdir().expect("tmp");
    let port = free_port();
    let inbound = dir.path().join("x12-inbound");
    std::fs::create_dir_all(&inbound).expect("inbound");
    let config = support::write_config(
        dir.path(),
        &format!(
            r#"[[hl7v2.listeners]]
listen = "127.0.0.1:{port}"
profile = "epic"
[x12]
profile = "x12-278"
[x12.identity]
id = "EHRGATEWAY"
[x12.file_drop]
inbound = "{inbound}"
poll_interval_ms = 100
settle_ms = 0
"#,
            inbound = inbound.display()
        ),
    );
    let daemon = Daemon::start(&config);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "listener not up: {e}"),
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");

    // Before traffic: every known series is there, at zero.
    let (text, before) = scrape(&daemon);
    for outcome in ["accepted", "rejected", "duplicate", "error"] {
        let labels = [
            ("adapter", "hl7v2"),
            ("profile", "epic"),
            ("outcome", outcome),
        ];
        assert_eq!(
            value(&before, "ehr_gateway_messages_total", &labels),
            Some(0.0),
            "{outcome}:\n{text}"
        );
    }
    assert_eq!(
        value(
            &before,
            "ehr_gateway_ack_latency_seconds_count",
            &[("adapter", "hl7v2")]
        ),
        Some(0.0)
    );
    for adapter in ["hl7v2", "x12"] {
        assert_eq!(
            value(&before, "ehr_gateway_adapter_up", &[("adapter", adapter)]),
            Some(1.0),
            "{adapter}"
        );
    }
    assert_eq!(
        value(
            &before,
            "ehr_gateway_messages_total",
            &[
                ("adapter", "x12"),
                ("profile", "x12-278"),
                ("outcome", "accepted")
            ]
        ),
        Some(0.0)
    );
    for reason in ["replay", "desktop_abort", "writeback_failed", "dead_letter"] {
        assert_eq!(
            value(
                &before,
                "ehr_gateway_manual_interventions_total",
                &[("reason", reason)]
            ),
            Some(0.0),
            "{reason}"
        );
    }
    assert_eq!(
        value(
            &before,
            "ehr_gateway_cases_total",
            &[("profile", "epic"), ("status", "requested")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(&before, "ehr_gateway_decision_cycle_seconds_count", &[]),
        Some(0.0)
    );
    assert!(
        text.contains("# HELP ehr_gateway_messages_total "),
        "{text}"
    );
    // Outbox gauges are published by the periodic task without any traffic.
    let before = scrape_until(&daemon, Duration::from_secs(5), |s| {
        value(s, "ehr_gateway_outbox_depth", &[]).is_some()
    });
    assert_eq!(value(&before, "ehr_gateway_outbox_depth", &[]), Some(0.0));
    assert_eq!(value(&before, "ehr_gateway_dead_letters", &[]), Some(0.0));

    // Known traffic: 3 good orders, 1 exact duplicate, 1 unsupported type.
    let template = support::epic_order();
    let template = gateway_hl7v2::mllp::files::split_messages(&template)
        .into_iter()
        .next()
        .expect("one message");
    for id in ["MX0001", "MX0002", "MX0003"] {
        assert_eq!(
            exchange(&mut stream, &message(&template, id, None)),
            "AA",
            "{id}"
        );
    }
    assert_eq!(
        exchange(&mut stream, &message(&template, "MX0002", None)),
        "AA"
    );
    let code = exchange(&mut stream, &message(&template, "MX0004", Some("ZZZ^Z01")));
    assert!(
        code == "AE" || code == "AR",
        "unsupported type answered {code}"
    );
    // One X12 278 request through the file drop (written aside, then renamed).
    let request =
        std::fs::read(support::repo_root().join("sample-messages/x12/x12-278/request.x12"))
            .expect("x12 sample");
    std::fs::write(inbound.join(".request.x12.part"), &request).expect("write");
    std::fs::rename(
        inbound.join(".request.x12.part"),
        inbound.join("request.x12"),
    )
    .expect("rename");

    // The file sink delivers the four case events; then everything is exact.
    let after = scrape_until(&daemon, Duration::from_secs(10), |s| {
        value(
            s,
            "ehr_gateway_forward_attempts_total",
            &[("sink", "file"), ("result", "delivered")],
        ) == Some(4.0)
            && value(s, "ehr_gateway_outbox_depth", &[]) == Some(0.0)
            // Recorded just after the ACK's last byte is written: may trail
            // the client by a moment.
            && value(s, "ehr_gateway_ack_latency_seconds_count", &[("adapter", "hl7v2")])
                == Some(5.0)
            && value(s, "ehr_gateway_ack_latency_seconds_count", &[("adapter", "x12")])
                == Some(1.0)
    });
    let messages = |outcome| {
        value(
            &after,
            "ehr_gateway_messages_total",
            &[
                ("adapter", "hl7v2"),
                ("profile", "epic"),
                ("outcome", outcome),
            ],
        )
    };
    assert_eq!(messages("accepted"), Some(3.0));
    assert_eq!(messages("duplicate"), Some(1.0));
    assert_eq!(messages("rejected"), Some(1.0));
    assert_eq!(messages("error"), Some(0.0));
    // Each message counted once, whatever else the adapter counts.
    assert_eq!(
        value(
            &after,
            "ehr_gateway_messages_total",
            &[
                ("adapter", "x12"),
                ("profile", "x12-278"),
                ("outcome", "accepted")
            ]
        ),
        Some(1.0)
    );
    assert_eq!(sum(&after, "ehr_gateway_messages_total", &[]), 6.0);
    assert_eq!(
        value(
            &after,
            "ehr_gateway_ack_latency_seconds_count",
            &[("adapter", "hl7v2")]
        ),
        Some(5.0)
    );
    assert_eq!(
        sum(&after, "ehr_gateway_cases_total", &[("profile", "epic")]),
        3.0
    );
    assert_eq!(
        sum(&after, "ehr_gateway_cases_total", &[("profile", "x12-278")]),
        1.0
    );
    assert_eq!(
        sum(
            &after,
            "ehr_gateway_forward_attempts_total",
            &[("sink", "file")]
        ),
        4.0
    );
    assert_eq!(
        value(&after, "ehr_gateway_outbox_oldest_age_seconds", &[]),
        Some(0.0)
    );
    assert_eq!(value(&after, "ehr_gateway_dead_letters", &[]), Some(0.0));
    assert_eq!(
        sum(&after, "ehr_gateway_manual_interventions_total", &[]),
        0.0
    );
    assert_eq!(
        value(&after, "ehr_gateway_adapter_up", &[("adapter", "hl7v2")]),
        Some(1.0)
    );
    // No PHI in any label: the synthetic patient's name and MRN never appear.
    let (text, _) = scrape(&daemon);
    let sample = String::from_utf8_lossy(&template).into_owned();
    let pid: Vec<&str> = sample
        .split('\r')
        .find(|s| s.starts_with("PID|"))
        .expect("PID segment")
        .split('|')
        .collect();
    let mrn = pid[3].split('^').next().expect("PID-3.1");
    let family = pid[5].split('^').next().expect("PID-5.1");
    for phi in [mrn, family] {
        assert!(phi.len() > 2, "sample field too short to search for");
        assert!(!text.contains(phi), "{phi} in /metrics");
    }
}
