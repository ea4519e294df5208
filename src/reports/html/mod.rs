//! The self-contained HTML report (`reports/report.html`): outcome, an SVG timeline of every
//! service's availability with the upgrade actions marked, outage windows, smoke results,
//! persistent resources and steps.
//!
//! Every value reaches the page through [`registry`], whose handlebars escaping is on, and
//! the template has no triple-stash (a unit test checks it): a test name, URL or error can
//! never become markup. The timeline's geometry is computed here, not in JavaScript.

mod page;
mod timeline;
mod view;

pub use page::{TEMPLATE, registry, render, write};
pub use timeline::MAX_BUCKETS;

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::page::*;
    use super::timeline::*;
    use super::view::*;
    use crate::reports::summary::Summary;
    use crate::reports::summary::{PersistentSummary, ResourceSummary, SmokeSummary};
    use crate::workspace::evidence::{ActionSpan, Window};
    use crate::workspace::evidence::{ProbeRecord, ServiceReport};
    use chrono::{DateTime, Utc};

    fn t(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap()
    }

    fn probe(service: &str, ms: i64, ok: bool) -> ProbeRecord {
        ProbeRecord {
            service: service.into(),
            t: t(ms),
            latency_ms: 3.0,
            outcome: if ok { "ok" } else { "refused" }.into(),
            status: None,
            error: None,
            action: None,
            late_ms: 0.0,
            connection: None,
        }
    }

    fn summary(services: Vec<ServiceReport>, actions: Vec<ActionSpan>) -> Summary {
        let services: std::collections::BTreeMap<_, _> =
            services.into_iter().map(|s| (s.name.clone(), s)).collect();
        Summary {
            summary_version: 1,
            run_id: "run-1".into(),
            lab: "demo".into(),
            from_release: "A".into(),
            to_release: "B".into(),
            outcome: "passed".into(),
            flow_complete: true,
            incomplete: Vec::new(),
            steps: Vec::new(),
            resources: ResourceSummary {
                total: 0,
                destroyed: 0,
                live: Vec::new(),
            },
            phases: crate::reports::phases::summarize(&actions, &services),
            services,
            upgrade_actions: actions,
            smoke: SmokeSummary::default(),
            rally: Default::default(),
            persistent: PersistentSummary::default(),
            leaked: Vec::new(),
        }
    }

    fn service(name: &str, windows: Vec<Window>) -> ServiceReport {
        ServiceReport {
            name: name.into(),
            url: format!("http://127.0.0.1/{name}?a=\"&<>"),
            windows,
            ..ServiceReport::default()
        }
    }

    #[test]
    fn template_never_bypasses_escaping() {
        assert!(
            !TEMPLATE.contains("{{{"),
            "triple-stash bypasses HTML escaping"
        );
        assert!(!TEMPLATE.contains("{{&"), "`{{&` bypasses HTML escaping");
        for external in [
            "src=\"http",
            "href=\"http",
            "@import",
            "url(http",
            "<script",
        ] {
            assert!(!TEMPLATE.contains(external), "external asset {external:?}");
        }
    }

    #[test]
    fn hostile_values_are_escaped_everywhere() {
        let hostile = "<script>alert(1)</script>\"'&";
        let mut s = summary(vec![service(hostile, Vec::new())], Vec::new());
        s.smoke.regressions.push(hostile.into());
        s.run_id = hostile.into();
        let html = render(&s, &[probe(hostile, 0, true)], None).unwrap();
        assert!(!html.contains("<script>alert"), "unescaped value in page");
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(html.contains("&quot;&amp;&lt;&gt;"), "URL not escaped");
    }

    #[test]
    fn no_services_shows_a_message_instead_of_a_timeline() {
        let html = render(&summary(Vec::new(), Vec::new()), &[], None).unwrap();
        assert!(!html.contains("<svg"));
        assert!(html.contains("No availability probes were recorded"));
        // Nothing probed is no evidence of "no outage".
        assert!(!html.contains("every probe passed"), "{html}");
        assert!(html.contains("nothing was probed"));
    }

    #[test]
    fn long_fast_run_is_bucketed_and_merged() {
        // 20 minutes at 50 ms: 24,000 probes, one short outage in the middle.
        let probes: Vec<ProbeRecord> = (0..24_000)
            .map(|i| probe("api", i * 50, !(12_000..12_040).contains(&i)))
            .collect();
        let refs: Vec<&ProbeRecord> = probes.iter().collect();
        let scale = Scale {
            start: t(0),
            end: t(24_000 * 50),
        };
        let marks = segments(&refs, scale);
        let classes: Vec<&str> = marks.iter().map(|m| m.class).collect();
        assert_eq!(classes, ["ok", "failed", "ok"]);
        assert!(marks[1].title.contains("40 failed"), "{}", marks[1].title);
        let html = render(&summary(Vec::new(), Vec::new()), &probes, None).unwrap();
        assert!(html.len() < 60_000, "page is {} bytes", html.len());
    }

    #[test]
    fn buckets_never_exceed_the_cap() {
        let probes: Vec<ProbeRecord> = (0..5_000).map(|i| probe("x", i, i % 2 == 0)).collect();
        let refs: Vec<&ProbeRecord> = probes.iter().collect();
        let marks = segments(
            &refs,
            Scale {
                start: t(0),
                end: t(5_000),
            },
        );
        assert!(marks.len() <= MAX_BUCKETS, "{} marks", marks.len());
    }

    #[test]
    fn the_phase_table_gives_each_actions_share_of_each_outage() {
        let window = Window {
            start: t(1_500),
            end: t(2_500),
            duration_ms: 1_000,
            action: Some("node1".into()),
            failures: 3,
            class: "refused".into(),
            prober_late: false,
            first_error: Some("step 2/2 (GET): unexpected status 403: <forbidden>".into()),
            connection: None,
        };
        let span = |name: &str, a, b| ActionSpan {
            name: name.into(),
            start: t(a),
            end: Some(t(b)),
        };
        let actions = vec![
            span("expand", 0, 1_000),
            span("node1", 1_000, 2_000),
            span("contract", 2_000, 4_000),
        ];
        let s = summary(
            vec![service("node", vec![window]), service("vip", vec![])],
            actions,
        );
        let html = render(&s, &[probe("vip", 0, true)], None).unwrap();
        let table = &html[html.find("id=\"phases\"").expect("a phase table")..];
        let table = &table[..table.find("</section>").unwrap()];
        let row = |action: &str| {
            let at = table.find(&format!("<b>{action}</b>")).unwrap();
            table[at..at + table[at..].find("</tr>").unwrap()].to_string()
        };
        assert!(
            row("expand").matches(">0<").count() == 2,
            "{}",
            row("expand")
        );
        assert!(row("node1").contains("500 ms"), "{}", row("node1"));
        assert!(row("contract").contains("500 ms"), "{}", row("contract"));
        let windows = &html[html.find("id=\"windows\"").expect("a window table")..];
        assert!(
            windows.contains("unexpected status 403: &lt;forbidden&gt;"),
            "the first error, escaped"
        );
        let empty = render(&summary(vec![service("vip", vec![])], vec![]), &[], None).unwrap();
        assert!(!empty.contains("id=\"phases\""), "no actions, no table");
    }

    #[test]
    fn windows_and_actions_land_on_the_axis() {
        let window = Window {
            start: t(4_000),
            end: t(6_000),
            duration_ms: 2_000,
            action: Some("node2".into()),
            failures: 7,
            class: "refused".into(),
            prober_late: false,
            first_error: None,
            connection: None,
        };
        let actions = vec![ActionSpan {
            name: "node2".into(),
            start: t(2_000),
            end: Some(t(8_000)),
        }];
        let s = summary(vec![service("api", vec![window])], actions);
        let probes = [probe("api", 0, true), probe("api", 10_000, true)];
        let tl = Timeline::build(&s, &probes, None).unwrap();
        let w = &tl.rows[0].windows[0];
        assert_eq!((w.x, w.w), (LABEL_W + 400.0, 200.0));
        assert_eq!((tl.actions[0].x, tl.actions[0].w), (LABEL_W + 200.0, 600.0));
        let labels: Vec<&str> = tl.ticks.iter().map(|t| t.label.as_str()).collect();
        assert_eq!(
            labels,
            [
                "+0s", "+1s", "+2s", "+3s", "+4s", "+5s", "+6s", "+7s", "+8s", "+9s", "+10s"
            ]
        );
    }

    #[test]
    fn availability_span_widens_the_axis() {
        let s = summary(vec![service("api", Vec::new())], Vec::new());
        let tl = Timeline::build(&s, &[probe("api", 5_000, true)], Some((t(0), t(10_000))));
        assert_eq!(tl.unwrap().rows[0].segments[0].x, LABEL_W + 500.0);
    }

    #[test]
    fn truncated_last_probe_line_is_noted_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("probes.jsonl");
        let line = serde_json::to_string(&probe("api", 0, true)).unwrap();
        std::fs::write(&path, format!("{line}\n{{\"service\":\"ap")).unwrap();
        let mut notes = Vec::new();
        assert_eq!(read_probes(&path, &mut notes).unwrap().len(), 1);
        assert_eq!(notes.len(), 1);
        std::fs::write(&path, format!("{{oops\n{line}\n")).unwrap();
        let err = read_probes(&path, &mut notes).unwrap_err();
        assert!(format!("{err:#}").contains("line 1"), "{err:#}");
    }

    #[test]
    fn probes_file_is_found_after_the_workspace_moved() {
        let dir = tempfile::tempdir().unwrap();
        let moved = dir.path().join("evidence/probes.jsonl");
        std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
        std::fs::write(&moved, "").unwrap();
        let recorded = Path::new("/old/agent/ws/evidence/probes.jsonl");
        assert_eq!(probes_path(dir.path(), recorded), moved);
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(duration(850.0), "850 ms");
        assert_eq!(duration(12_400.0), "12.40 s");
        assert_eq!(duration(185_000.0), "3 min 05 s");
        assert_eq!(offset_label(90), "+1m30s");
    }
}
