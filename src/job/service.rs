//! The services of the job family, by the name the watch syntax uses.

use std::fmt;

/// A Huawei Cloud service whose slow operations answer with a job id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Service {
    /// Elastic Cloud Server (the default).
    Ecs,
    /// Bare Metal Server.
    Bms,
    /// Elastic Volume Service.
    Evs,
    /// Image Management Service.
    Ims,
    /// Cloud Container Engine.
    Cce,
    /// Relational Database Service.
    Rds,
    /// Elastic IP (the VPC service's job API).
    Eip,
}

impl Service {
    /// Every service, in the order the documentation lists them.
    pub const ALL: [Service; 7] = [
        Service::Ecs,
        Service::Bms,
        Service::Evs,
        Service::Ims,
        Service::Cce,
        Service::Rds,
        Service::Eip,
    ];

    /// The name in the watch syntax, events, metrics and configuration
    /// keys (`cloud.endpoints.NAME`).
    pub fn as_str(self) -> &'static str {
        match self {
            Service::Ecs => "ecs",
            Service::Bms => "bms",
            Service::Evs => "evs",
            Service::Ims => "ims",
            Service::Cce => "cce",
            Service::Rds => "rds",
            Service::Eip => "eip",
        }
    }

    /// The first label of the service's API host
    /// (`https://{host}.{region}.myhuaweicloud.com`): the name, except for
    /// EIP, whose jobs are served by `vpc`.
    pub fn host_label(self) -> &'static str {
        match self {
            Service::Eip => "vpc",
            other => other.as_str(),
        }
    }

    /// The service of a name (exact, lower case).
    pub fn parse(name: &str) -> Option<Service> {
        Service::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The names, for messages: `ecs, bms, evs, ims, cce, rds, eip`.
    pub fn names() -> String {
        Service::ALL.map(Service::as_str).join(", ")
    }
}

impl fmt::Display for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for service in Service::ALL {
            assert_eq!(Service::parse(service.as_str()), Some(service));
        }
        assert_eq!(Service::parse("ECS"), None);
        assert_eq!(Service::parse("vpc"), None);
        assert_eq!(Service::Eip.host_label(), "vpc");
        assert_eq!(Service::names(), "ecs, bms, evs, ims, cce, rds, eip");
    }
}
