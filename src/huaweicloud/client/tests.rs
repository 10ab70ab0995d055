//! Tests of `client`.

use super::*;

#[test]
fn endpoints_keep_their_path_and_host() {
    let check = |url: &str, base: &str, host: &str| {
        let endpoint = Endpoint::new(&Url::parse(url).unwrap()).unwrap();
        assert_eq!(endpoint.base_path, base, "{url}");
        assert_eq!(endpoint.host(), host, "{url}");
    };
    check(
        "https://ecs.cn-north-4.myhuaweicloud.com",
        "",
        "ecs.cn-north-4.myhuaweicloud.com",
    );
    check("http://127.0.0.1:9000/cce/", "/cce", "127.0.0.1:9000");
    check("https://example.com:443/a/b?x=1", "/a/b", "example.com");
    for bad in ["mailto:x@example.com", "file:///tmp/x", "data:text/plain,x"] {
        assert!(Endpoint::new(&Url::parse(bad).unwrap()).is_err(), "{bad}");
    }
}

#[test]
fn http_dates() {
    assert_eq!(
        http_date_ms("Wed, 21 Oct 2015 07:28:00 GMT"),
        Some(1_445_412_480_000)
    );
    assert_eq!(http_date_ms("yesterday"), None);
    assert_eq!(http_date_ms(""), None);
}

#[test]
fn ca_file_errors_name_the_file() {
    let directory = tempfile::tempdir().unwrap();
    let missing = directory.path().join("missing.pem");
    let garbage = directory.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    for path in [missing, garbage] {
        let error = read_ca_file(&path).unwrap_err().to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
    }
}
