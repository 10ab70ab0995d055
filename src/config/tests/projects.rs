//! Projects and the endpoint of every (project, service).

use super::*;
use crate::config::Api;
use crate::job::{ProjectName, Service};

/// The endpoint of every API of every project, as `project api url (origin)`.
fn endpoints(text: &str) -> Vec<String> {
    let config = load(text, &no_env()).unwrap_or_else(|error| panic!("{error}\n{text}"));
    let mut lines = Vec::new();
    for project in config.projects() {
        for api in Api::ALL {
            let line = match project.endpoint(api) {
                Ok(url) => format!(
                    "{} {api} {url} ({})",
                    project.name,
                    project.endpoint_origin(api).unwrap_or("?")
                ),
                Err(error) => format!("{} {api} - {error}", project.name),
            };
            lines.push(line);
        }
    }
    lines
}

#[test]
fn endpoints_by_region() {
    let text = "[cloud]\nregion = \"cn-north-4\"\nproject_id = \"p0\"\n\
                [projects.sh]\nregion = \"cn-east-3\"\nproject_id = \"p1\"\n\
                [projects.same]\nproject_id = \"p2\"\n";
    let lines = endpoints(text);
    assert_eq!(
        lines,
        [
            "default ecs https://ecs.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default bms https://bms.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default evs https://evs.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default ims https://ims.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default cce https://cce.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default rds https://rds.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default eip https://vpc.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "default smn https://smn.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same ecs https://ecs.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same bms https://bms.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same evs https://evs.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same ims https://ims.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same cce https://cce.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same rds https://rds.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same eip https://vpc.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "same smn https://smn.cn-north-4.myhuaweicloud.com/ (cloud.region)",
            "sh ecs https://ecs.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh bms https://bms.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh evs https://evs.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh ims https://ims.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh cce https://cce.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh rds https://rds.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh eip https://vpc.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
            "sh smn https://smn.cn-east-3.myhuaweicloud.com/ (projects.sh.region)",
        ]
    );
    let config = load(text, &no_env()).unwrap();
    let same = config
        .project(&ProjectName::parse("same").unwrap())
        .unwrap();
    assert_eq!(same.region.as_deref(), Some("cn-north-4"));
    assert_eq!(same.project_id.as_deref(), Some("p2"));
    assert!(
        config
            .project(&ProjectName::parse("other").unwrap())
            .is_none()
    );
    assert_eq!(config.projects()[0].name, ProjectName::default());
}

#[test]
fn endpoints_by_precedence() {
    let text = "[cloud]\nendpoint = \"https://ecs.private.example\"\n\
                endpoints = { evs = \"https://evs.private.example\", ims = \"https://ims.private.example\" }\n\
                [projects.p]\nproject_id = \"p1\"\nregion = \"r-1\"\nendpoint = \"https://ecs.p.example\"\n\
                endpoints.ims = \"https://ims.p.example\"\n";
    let lines = endpoints(text);
    assert_eq!(
        lines,
        [
            "default ecs https://ecs.private.example/ (cloud.endpoint)",
            "default bms - project default has no endpoint for bms: set cloud.region, cloud.endpoints.bms, or an endpoint with {service}",
            "default evs https://evs.private.example/ (cloud.endpoints.evs)",
            "default ims https://ims.private.example/ (cloud.endpoints.ims)",
            "default cce - project default has no endpoint for cce: set cloud.region, cloud.endpoints.cce, or an endpoint with {service}",
            "default rds - project default has no endpoint for rds: set cloud.region, cloud.endpoints.rds, or an endpoint with {service}",
            "default eip - project default has no endpoint for eip: set cloud.region, cloud.endpoints.eip, or an endpoint with {service}",
            "default smn - project default has no endpoint for smn: set cloud.region, cloud.endpoints.smn, or an endpoint with {service}",
            "p ecs https://ecs.p.example/ (projects.p.endpoint)",
            "p bms https://bms.r-1.myhuaweicloud.com/ (projects.p.region)",
            "p evs https://evs.private.example/ (cloud.endpoints.evs)",
            "p ims https://ims.p.example/ (projects.p.endpoints.ims)",
            "p cce https://cce.r-1.myhuaweicloud.com/ (projects.p.region)",
            "p rds https://rds.r-1.myhuaweicloud.com/ (projects.p.region)",
            "p eip https://vpc.r-1.myhuaweicloud.com/ (projects.p.region)",
            "p smn https://smn.r-1.myhuaweicloud.com/ (projects.p.region)",
        ]
    );
}

#[test]
fn placeholders() {
    // One simulator serves every service of every project under /{service}.
    let text = "[cloud]\nendpoint = \"http://127.0.0.1:9000/{service}\"\nproject_id = \"p0\"\n\
                [projects.p]\nproject_id = \"p1\"\n\
                [projects.q]\nproject_id = \"p2\"\nregion = \"eu-de\"\n\
                endpoint = \"https://{service}.{region}.otc.example\"\nendpoints.eip = \"https://vpc.{region}.otc.example\"\n";
    let config = load(text, &no_env()).unwrap();
    let url = |project: &str, service: Service| {
        let name = ProjectName::parse(project).unwrap();
        config
            .project(&name)
            .unwrap()
            .endpoint(service)
            .unwrap()
            .to_string()
    };
    assert_eq!(url("default", Service::Ecs), "http://127.0.0.1:9000/ecs");
    assert_eq!(url("default", Service::Eip), "http://127.0.0.1:9000/eip");
    assert_eq!(url("p", Service::Cce), "http://127.0.0.1:9000/cce");
    assert_eq!(url("q", Service::Rds), "https://rds.eu-de.otc.example/");
    assert_eq!(url("q", Service::Eip), "https://vpc.eu-de.otc.example/");
    let smn = config.projects()[0].endpoint(Api::Smn).unwrap();
    assert_eq!(smn.as_str(), "http://127.0.0.1:9000/smn");
    // The shims name the default project's ECS endpoint; a template is no plain endpoint.
    assert_eq!(
        config.effective_endpoint().as_str(),
        "http://127.0.0.1:9000/ecs"
    );
    assert_eq!(config.endpoint(), None);

    check_all(&[
        (
            "[cloud]\nendpoint = \"https://{service}.{region}.example\"\n",
            "test.toml:2: cloud.endpoint: uses {region}, but project default has no region",
        ),
        (
            "[cloud]\nendpoint = \"https://{project}.example\"\n",
            "test.toml:2: cloud.endpoint: has an unknown placeholder, only {service} and {region} are replaced: \"https://{project}.example\"",
        ),
        (
            "[cloud]\nendpoint = \"http://{service}.example\"\n",
            "test.toml:2: cloud.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://ecs.example\"",
        ),
        (
            "[cloud]\nregion = \"r\"\nendpoints.evs = \"http://evs.example\"\n",
            "test.toml:3: cloud.endpoints.evs: must be https:// (plain http:// only for loopback addresses), got \"http://evs.example\"",
        ),
    ]);
}

#[test]
fn project_checks() {
    check_all(&[
        (
            "[cloud]\nregion = \"r\"\n[projects.p]\nregion = \"r2\"\n",
            "test.toml:3: projects.p.project_id: is required: only [cloud]'s project id is looked up in the environment or metadata (set it here, or cloud.project_id to share it)",
        ),
        (
            "[cloud]\nendpoint = \"https://ecs.example\"\nproject_id = \"p0\"\n[projects.p]\nendpoint = \"https://ecs.other.example\"\n",
            "ok",
        ),
        (
            "[cloud]\nendpoints.ecs = \"https://ecs.example\"\n[projects.p]\nproject_id = \"p1\"\nendpoints.evs = \"https://evs.example\"\n",
            "ok",
        ),
        (
            "[cloud]\nendpoints.evs = \"https://evs.example\"\n",
            "test.toml:1: cloud.region: is required unless cloud.endpoint or cloud.endpoints.ecs is set",
        ),
        (
            "[cloud]\nregion = \"r\"\n[projects.p]\nproject_id = \"p1\"\nregion = \"Bad\"\n",
            "test.toml:5: projects.p.region: must be 1 to 64 of a-z 0-9 -, like \"cn-north-4\", got \"Bad\"",
        ),
        (
            "[cloud]\nregion = \"r\"\n[projects.p]\nproject_id = \"p-1\"\n",
            "test.toml:4: projects.p.project_id: must be 1 to 64 of A-Z a-z 0-9, got \"p-1\"",
        ),
        (
            "[cloud]\nregion = \"r\"\n[projects.p]\nproject_id = \"p1\"\nendpoint = \"http://x.example\"\n",
            "test.toml:5: projects.p.endpoint: must be https:// (plain http:// only for loopback addresses), got \"http://x.example\"",
        ),
    ]);
}
