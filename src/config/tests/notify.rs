//! The sinks: `[[notify.webhook]]` and `[[notify.smn]]`.

use std::path::PathBuf;
use std::time::Duration;

use reqwest::Url;

use super::*;
use crate::config::{
    DEFAULT_SMN_STATUSES, DEFAULT_WEBHOOK_STATUSES, SINK_EVENTS, SmnSettings, TopicUrn,
    WebhookSettings,
};
use crate::job::ProjectName;

const PROJECTS: &str = "[cloud]\nregion = \"cn-north-4\"\nproject_id = \"p0\"\n\
                        [projects.sh]\nregion = \"cn-east-3\"\nproject_id = \"p1\"\n";

#[test]
fn webhook_defaults_and_values() {
    let text = format!(
        "{MINIMAL}[[notify.webhook]]\nurl = \"https://hooks.example.com/a\"\n\
         [[notify.webhook]]\nurl = \"http://127.0.0.1:8080/b\"\nevents = [\"job.timeout\"]\n\
         statuses = [\"fail\", \" Success \"]\nsecret_file = \"/run/credentials/hook\"\nmax_age = \"3s\"\n\
         [[notify.webhook]]\nname = \"ops_2\"\nurl = \"https://hooks.example.com/c\"\n\
         secret_files = [\"/run/new\", \"/run/old\"]\n"
    );
    let config = load(&text, &no_env()).unwrap();
    assert_eq!(
        config.webhooks(),
        &[
            WebhookSettings {
                name: "webhook-1".into(),
                url: Url::parse("https://hooks.example.com/a").unwrap(),
                events: SINK_EVENTS.map(String::from).to_vec(),
                statuses: DEFAULT_WEBHOOK_STATUSES.map(String::from).to_vec(),
                secret_files: vec![],
                max_age: Duration::from_secs(24 * 3600),
            },
            WebhookSettings {
                name: "webhook-2".into(),
                url: Url::parse("http://127.0.0.1:8080/b").unwrap(),
                events: vec!["job.timeout".into()],
                statuses: vec!["FAIL".into(), "SUCCESS".into()],
                secret_files: vec![PathBuf::from("/run/credentials/hook")],
                max_age: Duration::from_secs(3),
            },
            WebhookSettings {
                name: "ops_2".into(),
                url: Url::parse("https://hooks.example.com/c").unwrap(),
                events: SINK_EVENTS.map(String::from).to_vec(),
                statuses: DEFAULT_WEBHOOK_STATUSES.map(String::from).to_vec(),
                secret_files: vec![PathBuf::from("/run/new"), PathBuf::from("/run/old")],
                max_age: Duration::from_secs(24 * 3600),
            },
        ]
    );
}

#[test]
fn webhook_checks_name_the_key() {
    // The table starts on line 3, its first key is on line 4.
    let hook = |body: &str| format!("{MINIMAL}[[notify.webhook]]\n{body}\n");
    let url = "url = \"https://h.example.com/x\"";
    let cases: Vec<(String, &str)> = vec![
        (hook(url), "ok"),
        (
            hook("url = \"http://hooks.example.com/x\""),
            "test.toml:4: notify.webhook[0].url: must be https:// (plain http:// only for loopback addresses), got \"http://hooks.example.com/x\"",
        ),
        (
            hook("url = \"https://user:pw@h.example.com/\""),
            "test.toml:4: notify.webhook[0].url: must not contain a user name or password",
        ),
        (
            hook("url = \"https://h.example.com/?token=1\""),
            "test.toml:4: notify.webhook[0].url: must not have a query or fragment: \"https://h.example.com/?token=1\"",
        ),
        (
            format!(
                "{}[[notify.webhook]]\nurl = \"https://h.example.com/x\"\n",
                hook(url)
            ),
            "test.toml:6: notify.webhook[1].url: is the URL of notify.webhook[0] too; each webhook needs its own URL",
        ),
        (
            hook(&format!(
                "{url}\nevents = [\"job.transition\", \"api.error\"]"
            )),
            "test.toml:5: notify.webhook[0].events[1]: must be one of job.transition, job.subjob_failed, job.timeout, job.not_found, got \"api.error\"",
        ),
        (
            hook(&format!("{url}\nevents = []")),
            "test.toml:5: notify.webhook[0].events: must name at least one event",
        ),
        (
            hook(&format!("{url}\nstatuses = []")),
            "test.toml:5: notify.webhook[0].statuses: must name at least one status (to send no job.transition, leave it out of events)",
        ),
        (
            hook(&format!("{url}\nstatuses = [\"FAIL\", \" \"]")),
            "test.toml:5: notify.webhook[0].statuses[1]: must not be empty",
        ),
        (
            hook(&format!("{url}\nmax_age = \"500ms\"")),
            "test.toml:5: notify.webhook[0].max_age: must be at least 1s (got 500ms)",
        ),
        (
            hook(&format!("{url}\nmax_age = 60")),
            "test.toml:5: notify.webhook[0].max_age: invalid type: integer `60`, expected a duration",
        ),
        (
            hook(&format!("{url}\nsecret_file = \"\"")),
            "test.toml:5: notify.webhook[0].secret_file: must not be empty",
        ),
        (
            hook(&format!(
                "{url}\nsecret_file = \"/a\"\nsecret_files = [\"/b\"]"
            )),
            "test.toml:6: notify.webhook[0].secret_files: cannot be set together with secret_file; list every secret in secret_files",
        ),
        (hook(&format!("{url}\nsecret_files = []")), "ok"),
        (
            hook(&format!("{url}\nsecret_files = [\"/a\", \"\"]")),
            "test.toml:5: notify.webhook[0].secret_files[1]: must not be empty",
        ),
        (
            hook(&format!("{url}\nname = \"a b\"")),
            "test.toml:5: notify.webhook[0].name: must be 1 to 64 of A-Z a-z 0-9 - _, got \"a b\"",
        ),
        (
            hook(&format!("{url}\nname = \"{}\"", "n".repeat(65))),
            "test.toml:5: notify.webhook[0].name: must be 1 to 64 of A-Z a-z 0-9 - _, got \"nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn\"",
        ),
        (hook(&format!("{url}\nname = \"{}\"", "n".repeat(64))), "ok"),
        (
            format!(
                "{}[[notify.webhook]]\nurl = \"https://h.example.com/y\"\nname = \"webhook-1\"\n",
                hook(url)
            ),
            "test.toml:7: notify.webhook[1].name: \"webhook-1\" is the name of notify.webhook[0] too; sink names must be unique",
        ),
        (
            hook(&format!("{url}\nsecret = \"x\"")),
            "test.toml:5: notify.webhook[0].secret: unknown field `secret`, expected one of `url`, `name`, `events`, `statuses`, `secret_file`, `secret_files`, `max_age`",
        ),
        (
            hook(&format!("{url}\nstatus = [\"FAIL\"]")),
            "test.toml:5: notify.webhook[0].status: unknown field `status`, expected one of `url`, `name`, `events`, `statuses`, `secret_file`, `secret_files`, `max_age`; did you mean `statuses`?",
        ),
        (
            hook(&format!("{url}\nevents = \"job.timeout\"")),
            "test.toml:5: notify.webhook[0].events: invalid type: string \"job.timeout\", expected a sequence",
        ),
        (
            hook(&format!("{url}\nevents = [\"job.timeout\", 7]")),
            "test.toml:5: notify.webhook[0].events[1]: invalid type: integer `7`, expected a string",
        ),
        (
            format!("{MINIMAL}[notify]\nwebhooks = []\n"),
            "test.toml:4: notify.webhooks: unknown field `webhooks`, expected `webhook` or `smn`; did you mean `webhook`?",
        ),
        (format!("{MINIMAL}[notify]\nwebhook = []\n"), "ok"),
    ];
    check_all(&cases);
}

#[test]
fn smn_defaults_and_values() {
    let text = format!(
        "{PROJECTS}[[notify.smn]]\ntopic_urn = \"urn:smn:cn-north-4:p0:jobs\"\n\
         [[notify.smn]]\nname = \"pager\"\ntopic_urn = \"urn:smn:cn-east-3:p1:pager_1\"\nproject = \"sh\"\n\
         events = [\"job.transition\"]\nstatuses = [\"fail\"]\nmax_age = \"1h\"\n"
    );
    let config = load(&text, &no_env()).unwrap();
    assert_eq!(
        config.smn(),
        &[
            SmnSettings {
                name: "smn-1".into(),
                topic_urn: TopicUrn::parse("urn:smn:cn-north-4:p0:jobs").unwrap(),
                events: SINK_EVENTS.map(String::from).to_vec(),
                statuses: DEFAULT_SMN_STATUSES.map(String::from).to_vec(),
                max_age: Duration::from_secs(24 * 3600),
                project: ProjectName::default(),
            },
            SmnSettings {
                name: "pager".into(),
                topic_urn: TopicUrn::parse("urn:smn:cn-east-3:p1:pager_1").unwrap(),
                events: vec!["job.transition".into()],
                statuses: vec!["FAIL".into()],
                max_age: Duration::from_secs(3600),
                project: ProjectName::parse("sh").unwrap(),
            },
        ]
    );
    let urn = &config.smn()[1].topic_urn;
    assert_eq!(
        (urn.region(), urn.project_id(), urn.topic(), urn.as_str()),
        ("cn-east-3", "p1", "pager_1", "urn:smn:cn-east-3:p1:pager_1")
    );
}

#[test]
fn smn_checks_name_the_key() {
    let sink = |body: &str| format!("{PROJECTS}[[notify.smn]]\n{body}\n");
    let cases: Vec<(String, &str)> = vec![
        (
            sink("topic_urn = \"urn:smn:cn-east-3:p1:jobs\""),
            "test.toml:8: notify.smn[0].topic_urn: is in region cn-east-3 and project id p1, those of project sh, not of project default (cn-north-4, p0); set project = \"sh\"",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-east-3:p1:jobs\"\nproject = \"sh\""),
            "ok",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p9:jobs\""),
            "test.toml:8: notify.smn[0].topic_urn: is in region cn-north-4 and project id p9, which match no configured project; the sink's project is default (cn-north-4, p0)",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p0:jobs\"\nproject = \"nope\""),
            "test.toml:9: notify.smn[0].project: project \"nope\" is not configured (known: default, sh)",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p0:jobs\"\nproject = \"a.b\""),
            "test.toml:9: notify.smn[0].project: project name contains '.', only A-Z a-z 0-9 - _ are allowed",
        ),
        (
            sink("topic_urn = \"arn:smn:cn-north-4:p0:jobs\""),
            "test.toml:8: notify.smn[0].topic_urn: must start with urn:smn:, got \"arn:smn:cn-north-4:p0:jobs\"",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p0\""),
            "test.toml:8: notify.smn[0].topic_urn: must be urn:smn:{region}:{project_id}:{topic}, got \"urn:smn:cn-north-4:p0\"",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p0:-x\""),
            "test.toml:8: notify.smn[0].topic_urn: the topic name \"-x\" is not 1 to 255 of A-Z a-z 0-9 - _ starting with a letter or digit",
        ),
        (
            sink("topic_urn = \"urn:smn:CN:p0:x\""),
            "test.toml:8: notify.smn[0].topic_urn: the region \"CN\" is not 1 to 64 of a-z 0-9 -",
        ),
        (
            sink("name = \"x\""),
            "test.toml:7: notify.smn[0]: missing field `topic_urn`",
        ),
        (
            sink("topic_urn = \"urn:smn:cn-north-4:p0:jobs\"\nstatuses = []"),
            "test.toml:9: notify.smn[0].statuses: must name at least one status (to send no job.transition, leave it out of events)",
        ),
        (
            format!(
                "{PROJECTS}[[notify.webhook]]\nurl = \"https://h.example/\"\nname = \"smn-1\"\n\
                 [[notify.smn]]\ntopic_urn = \"urn:smn:cn-north-4:p0:jobs\"\n"
            ),
            "test.toml:10: notify.smn[0].name: \"smn-1\" is the name of notify.webhook[0] too; sink names must be unique",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[[notify.smn]]\ntopic_urn = \"urn:smn:cn-north-4:p0:jobs\"\n"
                .to_string(),
            "test.toml:4: notify.smn[0].topic_urn: is in region cn-north-4 and project id p0, which match no configured project; the sink's project is default (no cloud.project_id in the configuration)",
        ),
        (
            "[cloud]\nendpoint = \"https://ecs.example\"\nproject_id = \"p0\"\n[[notify.smn]]\ntopic_urn = \"urn:smn:cn-north-4:p0:jobs\"\n"
                .to_string(),
            "test.toml:5: notify.smn[0].topic_urn: is in region cn-north-4 and project id p0, which match no configured project; the sink's project is default (no cloud.region in the configuration)",
        ),
        (
            "[cloud]\nendpoint = \"http://127.0.0.1:1/{service}\"\n[projects.sh]\nregion = \"cn-east-3\"\n\
             project_id = \"p1\"\n[[notify.smn]]\ntopic_urn = \"urn:smn:cn-east-3:p1:jobs\"\n"
                .to_string(),
            "test.toml:7: notify.smn[0].topic_urn: is in region cn-east-3 and project id p1, those of project sh, not of project default (no cloud.region in the configuration); set project = \"sh\"",
        ),
    ];
    check_all(&cases);
}
