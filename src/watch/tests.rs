use super::file::{MAX_FILE_BYTES, read_capped};
use super::*;
use std::fs::{self, File};
use std::io::Write;
use std::time::{Duration, SystemTime};

fn config(keys: &[JobKey]) -> Vec<(JobKey, Labels)> {
    keys.iter()
        .map(|key| (key.clone(), Labels::new()))
        .collect()
}

fn projects() -> Vec<ProjectName> {
    vec![ProjectName::default(), ProjectName::parse("sh").unwrap()]
}

fn id(value: &str) -> JobKey {
    JobKey::parse(value).unwrap()
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}

/// The outcome of one line: no entry, an entry, or a problem message.
type Line<'a> = Result<Option<(&'a str, &'a [(&'a str, &'a str)])>, &'a str>;

/// Parses `input` as a whole file of one line and compares with `expected`.
fn check(input: impl AsRef<[u8]>, expected: Line<'_>) {
    let input = input.as_ref();
    let (entries, problems) = parse_text(Path::new("t.jobs"), input);
    let actual = match (&entries[..], &problems[..]) {
        ([], []) => Ok(None),
        ([entry], []) => {
            assert_eq!(
                entry.origin,
                Origin::File {
                    path: PathBuf::from("t.jobs"),
                    line: 1
                }
            );
            Ok(Some((entry.key.clone(), entry.labels.clone())))
        }
        ([], [problem]) => {
            assert_eq!(problem.line, Some(1), "{input:?}");
            Err(problem.message.clone())
        }
        _ => panic!("{input:?} gave {entries:?} and {problems:?}"),
    };
    let expected = expected
        .map(|entry| entry.map(|(job, pairs)| (id(job), labels(pairs))))
        .map_err(str::to_string);
    assert_eq!(actual, expected, "{input:?}");
}

#[test]
fn line_parsing() {
    let id32 = "ff80808288d41e1b018990260955686a";
    check(id32, Ok(Some((id32, &[]))));
    check(
        "ff80 team=a env=prod # note",
        Ok(Some(("ff80", &[("team", "a"), ("env", "prod")]))),
    );
    check("\tff80\t team=a\t", Ok(Some(("ff80", &[("team", "a")]))));
    check("ff80 team=a#b", Ok(Some(("ff80", &[("team", "a")]))));
    check("ff80#team=a", Ok(Some(("ff80", &[]))));
    check("ff80 url=a=b", Ok(Some(("ff80", &[("url", "a=b")]))));
    check(
        "ff80 k.v-1_x=ünï/€",
        Ok(Some(("ff80", &[("k.v-1_x", "ünï/€")]))),
    );
    check("ff80 team=a\r", Ok(Some(("ff80", &[("team", "a")]))));
    check("\u{feff}ff80", Ok(Some(("ff80", &[]))));
    check("", Ok(None));
    check("   \t ", Ok(None));
    check("# just a comment", Ok(None));
    check("   # indented comment", Ok(None));
    check("\r", Ok(None));
    check("\u{feff}", Ok(None));
    let key64 = format!("k{}", "x".repeat(63));
    let value256 = "é".repeat(256);
    check(
        format!("a {key64}={value256}"),
        Ok(Some(("a", &[(key64.as_str(), value256.as_str())]))),
    );
    let many: String = (0..32).map(|n| format!(" k{n}=v")).collect();
    assert_eq!(
        parse_text(Path::new("t"), format!("a{many}").as_bytes()).0[0]
            .labels
            .len(),
        32
    );

    check(
        "a/b/c",
        Err("job id contains '/', only A-Z a-z 0-9 - _ are allowed"),
    );
    check(
        "a*b",
        Err("job id contains '*', only A-Z a-z 0-9 - _ are allowed"),
    );
    check(
        "é team=a",
        Err("job id contains 'é', only A-Z a-z 0-9 - _ are allowed"),
    );
    check(
        "x".repeat(65),
        Err("job id is 65 characters long, at most 64 are allowed"),
    );
    check("ff80 team", Err(r#"bad label "team": expected key=value"#));
    check("ff80 =a", Err(r#"bad label "=a": the key is empty"#));
    check(
        "ff80 team=",
        Err(r#"bad label "team=": the value is empty"#),
    );
    check(
        "ff80 1team=a",
        Err(r#"bad label "1team=a": the key starts with '1', not a letter"#),
    );
    check(
        "ff80 ékey=a",
        Err(r#"bad label "ékey=a": the key starts with 'é', not a letter"#),
    );
    check(
        "ff80 tëam=a",
        Err(r#"bad label "tëam=a": the key contains 'ë', only A-Z a-z 0-9 _ . - are allowed"#),
    );
    check(
        "ff80 te:am=a",
        Err(r#"bad label "te:am=a": the key contains ':', only A-Z a-z 0-9 _ . - are allowed"#),
    );
    check(
        format!("a k{}=v", "x".repeat(64)),
        Err(&format!(
            "bad label \"k{}=v\": the key is 65 characters long, at most 64 are allowed",
            "x".repeat(64)
        )),
    );
    check(
        format!("a k={}", "v".repeat(257)),
        Err(&format!(
            "bad label \"k={}\": the value is 257 characters long, at most 256 are allowed",
            "v".repeat(257)
        )),
    );
    check(
        "ff80 team=a\u{a0}b",
        Err("bad label \"team=a\\u{a0}b\": the value contains the white space U+00A0"),
    );
    check(
        "ff80 team=a env=b team=c",
        Err(r#"label key "team" is repeated"#),
    );
    check(format!("a{many} k32=v"), Err("more than 32 labels"));
}

#[test]
fn line_bytes() {
    check(b"ff80 team=\xff", Err("line is not valid UTF-8"));
    check(b"\xc3", Err("line is not valid UTF-8"));
    check(b"ff80\0", Err("line contains the control character U+0000"));
    check(
        "ff80 # bell \u{7}",
        Err("line contains the control character U+0007"),
    );
    check(
        "ff80 a=\u{85}",
        Err("line contains the control character U+0085"),
    );
    check("a\rb", Err("line contains the control character U+000D"));
    check(
        format!("a #{}", "x".repeat(MAX_LINE_BYTES - 3)),
        Ok(Some(("a", &[]))),
    );
    check(
        format!("a #{}", "x".repeat(MAX_LINE_BYTES - 2)),
        Err("line is 4097 bytes long, at most 4096 are allowed"),
    );
    // A byte order mark counts only at the very start of the text.
    check(
        " \u{feff}",
        Err("job id contains '\\u{feff}', only A-Z a-z 0-9 - _ are allowed"),
    );
}

#[test]
fn text_line_numbers() {
    let text = b"\xef\xbb\xbf# header\r\na team=x\r\n\r\nb*c\r\nd team=y # z\r\n\xff\r\ne";
    let path = Path::new("dir/a.jobs");
    let (entries, problems) = parse_text(path, text);
    let found: Vec<(String, usize)> = entries
        .iter()
        .map(|entry| match &entry.origin {
            Origin::File { line, .. } => (entry.key.to_string(), *line),
            Origin::Config => unreachable!(),
        })
        .collect();
    assert_eq!(found, [("a".into(), 2), ("d".into(), 5), ("e".into(), 7)]);
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "dir/a.jobs:4: job id contains '*', only A-Z a-z 0-9 - _ are allowed",
            "dir/a.jobs:6: line is not valid UTF-8",
        ]
    );
}

#[test]
fn text_entry_cap() {
    let (entries, problems) = parse_text_limited(Path::new("a.jobs"), b"a\nb\n#\nc\nd\n", 2);
    assert_eq!(entries.len(), 2);
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["a.jobs:4: more than 2 jobs, the most allowed; this line and the rest are ignored"]
    );
}

#[test]
fn text_problem_cap() {
    let mut text = "bad*id\n".repeat(MAX_PROBLEMS_PER_FILE + 50);
    text.push_str("good\n");
    let (entries, problems) = parse_text(Path::new("a.jobs"), text.as_bytes());
    assert_eq!(entries.len(), 1);
    assert_eq!(problems.len(), MAX_PROBLEMS_PER_FILE + 1);
    assert_eq!(
        problems[MAX_PROBLEMS_PER_FILE - 1].line,
        Some(MAX_PROBLEMS_PER_FILE)
    );
    assert_eq!(
        problems[MAX_PROBLEMS_PER_FILE].to_string(),
        "a.jobs: 50 more problems in this file are not listed"
    );
}

#[test]
fn problem_display() {
    let check = |problem: Problem, expected: &str| assert_eq!(problem.to_string(), expected);
    let at = |line| Problem {
        path: PathBuf::from("/etc/j/a.jobs"),
        line,
        message: "oops".into(),
    };
    check(at(Some(3)), "/etc/j/a.jobs:3: oops");
    check(at(None), "/etc/j/a.jobs: oops");
}

#[test]
fn large_text_parses() {
    let mut text = String::new();
    for n in 0..100_000 {
        text.push_str(&format!("job-{n:06} team=infra env=prod # line {n}\n"));
    }
    let (entries, problems) = parse_text(Path::new("big.jobs"), text.as_bytes());
    assert_eq!((entries.len(), problems.len()), (100_000, 0));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(4000))]
    #[test]
    fn parse_text_never_panics(text in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        let (entries, problems) = parse_text(Path::new("p.jobs"), &text);
        let lines = text.split(|&b| b == b'\n').count();
        proptest::prop_assert!(entries.len() + problems.len() <= lines);
    }

    #[test]
    fn parse_text_never_panics_on_near_misses(text in "[a-z0-9#= \t\r\n\u{0}\u{feff}\u{a0}é=_.-]{0,200}") {
        let _ = parse_text(Path::new("p.jobs"), text.as_bytes());
    }
}

// Directory tests.

fn write(dir: &Path, name: &str, text: impl AsRef<[u8]>) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, text).unwrap();
    path
}

/// Problems as strings, with the directory shown as `D`.
fn shown(dir: &Path, problems: &[Problem]) -> Vec<String> {
    let prefix = dir.display().to_string();
    problems
        .iter()
        .map(|problem| problem.to_string().replace(&prefix, "D"))
        .collect()
}

fn ids(list: &WatchList) -> Vec<String> {
    list.iter().map(|(id, _)| id.to_string()).collect()
}

#[test]
fn load_config_only() {
    let (list, problems) = load(
        &config(&[id("b"), id("a"), id("b")]),
        None,
        &projects_check(&projects()),
    );
    assert_eq!(problems, []);
    assert_eq!(ids(&list), ["a", "b"]);
    assert_eq!(list.get(&id("a")), Some(&Labels::new()));
    assert_eq!(list.origin(&id("b")), Some(Origin::Config));
    assert!(!list.contains(&id("c")));
    let (empty, problems) = load(&config(&[]), None, &projects_check(&projects()));
    assert!(empty.is_empty() && problems.is_empty());
    assert_eq!(empty, WatchList::default());
}

#[test]
fn load_files_in_name_order() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "b.jobs", "x team=b\ny\n");
    write(dir, "a.jobs", "x team=a\n");
    write(dir, "c.jobs", "z\n");
    write(dir, ".hidden.jobs", "hidden\n");
    write(dir, ".jobs", "dotonly\n");
    write(dir, "notes.txt", "txt\n");
    write(dir, "d.jobs.bak", "bak\n");
    write(dir, "a.JOBS", "upper\n");
    fs::create_dir(dir.join("sub.jobs")).unwrap();
    write(&dir.join("sub.jobs"), "inner.jobs", "inner\n");
    let (list, problems) = load(
        &config(&[id("cfg")]),
        Some(dir),
        &projects_check(&projects()),
    );
    assert_eq!(
        shown(dir, &problems),
        [
            "D/b.jobs:1: job x is already listed at D/a.jobs:1 with other labels; this line is ignored"
        ]
    );
    assert_eq!(ids(&list), ["cfg", "x", "y", "z"]);
    assert_eq!(list.get(&id("x")), Some(&labels(&[("team", "a")])));
    assert_eq!(
        list.origin(&id("y")),
        Some(Origin::File {
            path: dir.join("b.jobs"),
            line: 2
        })
    );
    assert_eq!(
        list.origin(&id("z")),
        Some(Origin::File {
            path: dir.join("c.jobs"),
            line: 1
        })
    );
}

#[test]
fn load_duplicates() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "1.jobs", "same team=a\nplain\ncfg\nplain env=x\n");
    write(
        dir,
        "2.jobs",
        "# again\nsame team=a\nplain\nsame\ncfg team=x\n",
    );
    let (list, problems) = load(
        &config(&[id("cfg")]),
        Some(dir),
        &projects_check(&projects()),
    );
    assert_eq!(
        shown(dir, &problems),
        [
            "D/1.jobs:4: job plain is already listed at D/1.jobs:2 with other labels; this line is ignored",
            "D/2.jobs:4: job same is already listed at D/1.jobs:1 with other labels; this line is ignored",
            "D/2.jobs:5: job cfg is already listed in watch.jobs of the configuration with other labels; this line is ignored",
        ]
    );
    assert_eq!(ids(&list), ["cfg", "plain", "same"]);
    assert_eq!(list.origin(&id("cfg")), Some(Origin::Config));
    assert_eq!(list.get(&id("same")), Some(&labels(&[("team", "a")])));
}

#[test]
fn load_bad_line_keeps_the_rest() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "a.jobs", "good1\nbad*id\ngood2 team\ngood3 env=x\n");
    let (list, problems) = load(&config(&[]), Some(dir), &projects_check(&projects()));
    assert_eq!(
        shown(dir, &problems),
        [
            "D/a.jobs:2: job id contains '*', only A-Z a-z 0-9 - _ are allowed",
            r#"D/a.jobs:3: bad label "team": expected key=value"#,
        ]
    );
    assert_eq!(ids(&list), ["good1", "good3"]);
}

#[test]
fn load_missing_dir() {
    let temp = tempfile::tempdir().unwrap();
    let missing = temp.path().join("nope");
    let (list, problems) = load(
        &config(&[id("a")]),
        Some(&missing),
        &projects_check(&projects()),
    );
    assert_eq!(ids(&list), ["a"]);
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].path, missing);
    assert_eq!(problems[0].line, None);
    assert!(
        problems[0]
            .message
            .starts_with("cannot read the directory: "),
        "{problems:?}"
    );
    // A file where the directory should be is a problem too.
    let file = write(temp.path(), "file", "a\n");
    let (_, problems) = load(&config(&[]), Some(&file), &projects_check(&projects()));
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn load_symlinks() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "a.jobs", "a\n");
    write(dir, "target.txt", "linked team=x\n");
    std::os::unix::fs::symlink("loop.jobs", dir.join("loop.jobs")).unwrap();
    std::os::unix::fs::symlink("missing.txt", dir.join("dangling.jobs")).unwrap();
    std::os::unix::fs::symlink("target.txt", dir.join("link.jobs")).unwrap();
    write(dir, "z.jobs", "z\n");
    let (list, problems) = load(&config(&[]), Some(dir), &projects_check(&projects()));
    assert_eq!(ids(&list), ["a", "linked", "z"]);
    let shown = shown(dir, &problems);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert!(
        shown[0].starts_with("D/dangling.jobs: cannot read the file: "),
        "{shown:?}"
    );
    assert!(
        shown[1].starts_with("D/loop.jobs: cannot read the file: "),
        "{shown:?}"
    );
}

#[test]
fn load_skips_fifo_without_blocking() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "a.jobs", "a\n");
    let made = std::process::Command::new("mkfifo")
        .arg(dir.join("pipe.jobs"))
        .status();
    if !made.is_ok_and(|status| status.success()) {
        // Without mkfifo there is no FIFO to skip; the rest of the suite still runs.
        return;
    }
    let (list, problems) = load(&config(&[]), Some(dir), &projects_check(&projects()));
    assert_eq!(ids(&list), ["a"]);
    assert_eq!(
        shown(dir, &problems),
        ["D/pipe.jobs: not a regular file (a FIFO), skipped"]
    );
}

#[test]
fn load_binary_garbage() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    // A fixed pseudo-random sequence, so a failure can be reproduced.
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let garbage: Vec<u8> = (0..64 * 1024)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect();
    assert!(garbage.contains(&0) && std::str::from_utf8(&garbage).is_err());
    write(dir, "a.jobs", &garbage);
    write(dir, "b.jobs", "fine\n");
    let (list, problems) = load(&config(&[]), Some(dir), &projects_check(&projects()));
    assert!(list.contains(&id("fine")));
    assert!(!problems.is_empty());
    assert!(problems.len() <= MAX_PROBLEMS_PER_FILE + 1);
    assert!(
        problems
            .iter()
            .all(|problem| problem.path == dir.join("a.jobs"))
    );
}

#[test]
fn load_refuses_oversized_file_unread() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let big = File::create(dir.join("big.jobs")).unwrap();
    big.set_len(MAX_FILE_BYTES + 1).unwrap();
    write(dir, "small.jobs", "small\n");
    let (list, problems) = load(&config(&[]), Some(dir), &projects_check(&projects()));
    assert_eq!(ids(&list), ["small"]);
    assert_eq!(
        shown(dir, &problems),
        ["D/big.jobs: the file is 33554433 bytes, more than the limit of 33554432; not read"]
    );
}

#[test]
fn read_capped_catches_growth() {
    let check = |text: &[u8], expected: Result<&[u8], &str>| {
        assert_eq!(
            read_capped(text, 4, 0).as_deref().map_err(String::as_str),
            expected
        )
    };
    check(b"", Ok(b""));
    check(b"abcd", Ok(b"abcd"));
    check(
        b"abcde",
        Err("the file grew past the limit of 4 bytes while being read; not used"),
    );
}

#[test]
fn load_entry_cap() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    write(dir, "a.jobs", "a\nb\nc\n");
    write(dir, "b.jobs", "d\n");
    let (list, problems) = load_limited(
        &config(&[id("a"), id("x")]),
        Some(dir),
        &projects_check(&projects()),
        3,
    );
    assert_eq!(ids(&list), ["a", "b", "x"]);
    assert_eq!(
        shown(dir, &problems),
        ["D/a.jobs:3: more than 3 jobs, the most allowed; this line and the rest are ignored"]
    );
    let (list, problems) = load_limited(
        &config(&[id("a"), id("b"), id("c")]),
        None,
        &projects_check(&projects()),
        2,
    );
    assert_eq!(ids(&list), ["a", "b"]);
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["watch.jobs: more than 2 jobs, the most allowed; job c and the rest are ignored"]
    );
}

#[test]
fn fingerprint_notices_changes() {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path();
    let empty = fingerprint(dir);
    assert_eq!(empty, fingerprint(dir));

    let a = write(dir, "a.jobs", "aaaa\n");
    let one = fingerprint(dir);
    assert_ne!(one, empty);
    assert_eq!(one, fingerprint(dir));

    // Files load ignores do not count.
    write(dir, ".a.jobs", "x\n");
    write(dir, "a.txt", "x\n");
    fs::create_dir(dir.join("d.jobs")).unwrap();
    assert_eq!(fingerprint(dir), one);

    // Same size, another content, and an mtime set explicitly to differ.
    let mut file = File::create(&a).unwrap();
    file.write_all(b"bbbb\n").unwrap();
    file.set_modified(SystemTime::UNIX_EPOCH + Duration::new(1_000_000, 123))
        .unwrap();
    drop(file);
    let rewritten = fingerprint(dir);
    assert_ne!(rewritten, one);

    write(dir, "b.jobs", "b\n");
    let two = fingerprint(dir);
    assert_ne!(two, rewritten);

    fs::remove_file(dir.join("b.jobs")).unwrap();
    let removed = fingerprint(dir);
    assert_ne!(removed, two);
    assert_eq!(removed, rewritten);

    std::os::unix::fs::symlink("nowhere", dir.join("c.jobs")).unwrap();
    assert_ne!(fingerprint(dir), removed);
    fs::remove_file(dir.join("c.jobs")).unwrap();

    let missing = fingerprint(&dir.join("nope"));
    assert_ne!(missing, Fingerprint::default());
    assert_eq!(missing, fingerprint(&dir.join("nope")));
}

#[test]
fn services_and_projects_in_watch_files() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::write(
        dir.join("a.jobs"),
        "evs:v1 team=db\nsh/cce:c1\nnope/ecs:x\nfoo:abc\nv1\n",
    )
    .unwrap();
    let (list, problems) = load(&[], Some(dir), &projects_check(&projects()));
    let keys: Vec<String> = list.iter().map(|(key, _)| key.to_string()).collect();
    assert_eq!(keys, ["v1", "evs:v1", "sh/cce:c1"]);
    let messages: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(messages[0].ends_with("a.jobs:3: unknown project \"nope\": the configuration has default, sh (a [projects.NAME] table names one)"), "{messages:?}");
    assert!(
        messages[1].contains("a.jobs:4: unknown service \"foo\""),
        "{messages:?}"
    );
}
