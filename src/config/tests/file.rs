//! Errors in the file's text: syntax, unknown keys and wrong types, each
//! with `file:line` and the dotted key.

use super::*;

#[test]
fn file_errors_carry_the_line_and_the_key() {
    check_all(&[
        (
            "[cloud]\nregion = \"cn-north-4\"\n\n[poll]\ninitial_interval = \"2s\"\n\nintial_interval = \"3s\"\n",
            "test.toml:7: poll.intial_interval: unknown field `intial_interval`, expected one of \
             `initial_interval`, `max_interval`, `pending_payment_interval`, `job_timeout`, \
             `not_found_grace`, `adaptive`; did you mean `initial_interval`?",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[metrix]\nlisten = \"x\"\n",
            "test.toml:3: metrix: unknown field `metrix`, expected one of `cloud`, `projects`, \
             `credentials`, `poll`, `limits`, `watch`, `state`, `log`, `metrics`, `notify`; \
             did you mean `metrics`?",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\nflavour = 1\n",
            "test.toml:3: cloud.flavour: unknown field `flavour`, expected one of `region`, \
             `project_id`, `endpoint`, `endpoints`, `ca_file`",
        ),
        (
            "poll.intial_interval = \"2s\"\n",
            "test.toml:1: poll.intial_interval: unknown field `intial_interval`, expected one of \
             `initial_interval`, `max_interval`, `pending_payment_interval`, `job_timeout`, \
             `not_found_grace`, `adaptive`; did you mean `initial_interval`?",
        ),
        (
            "[cloud\nregion = 1\n",
            "test.toml:1: unclosed table, expected `]`",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\nregion = \"x\"\n",
            "test.toml:3: duplicate key",
        ),
        (
            "[cloud]\nregion = 4\n",
            "test.toml:2: cloud.region: invalid type: integer `4`, expected a string",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[watch]\njobs = [\"a\",\n  5]\n",
            "test.toml:5: watch.jobs[1]: invalid type: integer `5`, expected a string",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[watch]\njobs = \"a\"\n",
            "test.toml:4: watch.jobs: invalid type: string \"a\", expected a sequence",
        ),
        (
            "poll = 5\n",
            "test.toml:1: poll: invalid type: integer `5`, expected struct RawPoll",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\nendpoints = { evs = \"https://e.example.com\", vpc = \"https://v.example.com\" }\n",
            "test.toml:3: cloud.endpoints.vpc: unknown service \"vpc\", expected one of ecs, bms, \
             evs, ims, cce, rds, eip, smn",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[projects.default]\nregion = \"cn-east-3\"\n",
            "test.toml:3: projects.default: [projects.default] is not allowed: the default \
             project is [cloud], set its keys there",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[projects.\"a.b\"]\nregion = \"cn-east-3\"\n",
            "test.toml:3: projects.a.b: project name contains '.', only A-Z a-z 0-9 - _ are allowed",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[projects.sh]\nregin = \"cn-east-3\"\n",
            "test.toml:4: projects.sh.regin: unknown field `regin`, expected one of `region`, \
             `project_id`, `endpoint`, `endpoints`; did you mean `region`?",
        ),
        (
            "[cloud]\nregion = \"cn-north-4\"\n[[notify.webhook]]\nevents = [\"job.timeout\"]\n",
            "test.toml:3: notify.webhook[0]: missing field `url`",
        ),
    ]);
}

#[test]
fn hostile_text_is_refused_naming_the_file() {
    let mut garbage = String::from("\u{0}\u{1}\u{7f}[\u{fffd}\u{1b}[31m=\"\u{0}");
    garbage.extend((0..2_000u32).filter_map(char::from_u32));
    let cases = [
        garbage,
        "[cloud]\nre\u{0}gion = \"x\"\n".to_string(),
        format!("a = {}1{}", "{ b = ".repeat(10_000), " }".repeat(10_000)),
        format!(
            "[watch]\njobs = {}{}",
            "[".repeat(10_000),
            "]".repeat(10_000)
        ),
    ];
    for text in cases {
        let error = load(&text, &no_env()).unwrap_err();
        assert!(error.place().starts_with("test.toml"), "{error}");
        assert!(!error.to_string().contains('\n'), "{error}");
    }
}
