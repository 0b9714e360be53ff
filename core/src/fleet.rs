//! Factories and access tokens: who may talk to the coordinator, and as what.

use serde::{Deserialize, Serialize};

use crate::job::{FactoryId, Millis};

/// A worker machine known to the coordinator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Factory {
    pub id: FactoryId,
    pub name: String,
    pub os: String,
    pub arch: String,
    /// Sorted, deduplicated.
    pub capabilities: Vec<String>,
    pub engine_classes: Vec<String>,
    pub slots: u32,
    pub cost_per_hour_micros: u64,
    pub status: FactoryStatus,
    pub enrolled_at: Millis,
    pub last_heartbeat: Millis,
    pub slots_busy: u32,
    /// Hash of the factory's current token (rotation replaces it).
    pub token_hash: [u8; 32],
    /// What the factory holds warm (repositories, cache keys), as its last heartbeat said:
    /// jobs whose `affinity` names one score higher there.
    pub warm: Vec<String>,
}

/// Warm keys a factory may report.
pub const WARM_KEYS_MAX: usize = 64;

/// Capabilities one factory may offer.
pub const FACTORY_CAPABILITIES_MAX: usize = 256;
/// Engine classes one factory may offer.
pub const FACTORY_ENGINE_CLASSES_MAX: usize = 32;
/// Longest `os` or `arch`, in bytes.
pub const PLATFORM_LEN_MAX_BYTES: usize = 32;

/// Checks what a factory says it is (at enrollment): `os` and `arch` are 1 to 32 bytes of
/// `[a-z0-9_]`, the charset of Rust's `std::env::consts::{OS, ARCH}` that agents report — a
/// charset rather than a list, so a new platform needs no coordinator release; capabilities
/// and engine classes follow the rule of a job's capabilities (`[a-z0-9._:-]`, 1 to 64), so
/// whatever a factory offers is something a job can ask for. Every problem, with its field.
pub fn check_description(
    os: &str,
    arch: &str,
    capabilities: &[String],
    engine_classes: &[String],
) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    for (field, value) in [("os", os), ("arch", arch)] {
        let charset_ok = value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if value.is_empty() || value.len() > PLATFORM_LEN_MAX_BYTES || !charset_ok {
            problems.push(format!(
                "{field}: must be 1 to {PLATFORM_LEN_MAX_BYTES} characters from [a-z0-9_], got {:?}",
                value.chars().take(64).collect::<String>()
            ));
        }
    }
    for (field, names, max) in [
        ("capabilities", capabilities, FACTORY_CAPABILITIES_MAX),
        ("engine_classes", engine_classes, FACTORY_ENGINE_CLASSES_MAX),
    ] {
        if names.len() > max {
            problems.push(format!(
                "{field}: must have at most {max} entries, got {}",
                names.len()
            ));
            continue;
        }
        for (i, name) in names.iter().enumerate() {
            if let Err(message) = crate::manifest::check_capability_name(name) {
                problems.push(format!("{field}[{i}]: {message}"));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FactoryStatus {
    Online,
    /// Finishes what it runs, takes nothing new.
    Draining,
    /// Missed its heartbeat window.
    Offline,
    /// Its token no longer works; it can only enroll again.
    Revoked,
}

impl FactoryStatus {
    pub const ALL: [FactoryStatus; 4] = [
        FactoryStatus::Online,
        FactoryStatus::Draining,
        FactoryStatus::Offline,
        FactoryStatus::Revoked,
    ];

    pub fn name(self) -> &'static str {
        match self {
            FactoryStatus::Online => "online",
            FactoryStatus::Draining => "draining",
            FactoryStatus::Offline => "offline",
            FactoryStatus::Revoked => "revoked",
        }
    }

    /// The status an operator's undrain leaves: online, and only from draining (an offline
    /// factory must heartbeat to be online, a revoked one must enroll again).
    pub fn undrained(self) -> Result<FactoryStatus, NotDraining> {
        match self {
            FactoryStatus::Draining => Ok(FactoryStatus::Online),
            other => Err(NotDraining(other.name())),
        }
    }
}

/// An undrain of a factory that is not draining; nothing changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("it is {0}, not draining")]
pub struct NotDraining(pub &'static str);

/// What a token lets its bearer do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// Everything, including minting tokens.
    Admin,
    /// Submit jobs and act on them.
    Operator,
    /// Read only.
    Viewer,
    /// Enroll one factory (then it is spent).
    Enrollment,
    /// One factory's own token: its heartbeats, claims and its own leases only.
    Factory(FactoryId),
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Operator => "operator",
            Role::Viewer => "viewer",
            Role::Enrollment => "enrollment",
            Role::Factory(_) => "factory",
        }
    }

    /// Whether the role may read operator data (jobs, events, factories).
    pub fn can_view(self) -> bool {
        matches!(self, Role::Admin | Role::Operator | Role::Viewer)
    }

    /// Whether the role may submit jobs and take operator actions.
    pub fn can_operate(self) -> bool {
        matches!(self, Role::Admin | Role::Operator)
    }
}

/// A stored token: only the hash of its secret is kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Token {
    pub role: Role,
    /// Who or what it was made for, for audit events.
    pub name: String,
    pub created_at: Millis,
    pub revoked: bool,
    /// After this time the token is refused (absent: it does not expire).
    pub expires_at: Option<Millis>,
    /// Who minted it (`admin:alice`); absent for the first admin token, factory tokens, and
    /// tokens minted before this was kept.
    pub created_by: Option<String>,
}

/// Why a stored token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenRefusal {
    /// Revoked (or, for an enrollment token, spent): ask an admin for a new one.
    #[error("token revoked")]
    Revoked,
    /// Past its expiry: ask an admin for a new one.
    #[error("token expired at {0} (ms since the epoch)")]
    Expired(Millis),
}

impl Token {
    /// Whether the token may be used at `now`: not revoked, and `now` is before its expiry.
    pub fn check(&self, now: Millis) -> Result<(), TokenRefusal> {
        if self.revoked {
            return Err(TokenRefusal::Revoked);
        }
        match self.expires_at {
            Some(at) if now >= at => Err(TokenRefusal::Expired(at)),
            _ => Ok(()),
        }
    }
}

/// How a browser session's token names the token signed in with, in its `created_by`: a
/// session is a token like any other (listed, revocable by admins), tied to its parent so that
/// revoking the parent ends its sessions too.
pub const SESSION_OF: &str = "session of token ";

/// How long a browser session lasts unless its token expires sooner: a working day.
pub const SESSION_TTL_MS: Millis = 12 * 60 * 60 * 1000;

impl Token {
    /// The id of the token this one is a browser session of, if it is one.
    pub fn session_of(&self) -> Option<&str> {
        self.created_by.as_deref()?.strip_prefix(SESSION_OF)
    }
}

/// When a session opened at `now` from a token that expires at `parent` ends: after
/// [`SESSION_TTL_MS`], and never later than its token.
pub fn session_expiry(now: Millis, parent: Option<Millis>) -> Millis {
    let own = now.saturating_add(SESSION_TTL_MS);
    parent.map_or(own, |p| p.min(own))
}

/// Hex digits of a token's id.
pub const TOKEN_ID_LEN: usize = 16;

/// A token's public id: the first 8 bytes of its secret's hash, in hex. The hash cannot be
/// turned back into the secret, so its prefix may be shown and logged; 64 bits keep ids of
/// the few thousand tokens a store holds apart.
pub fn token_id(hash: &[u8; 32]) -> String {
    crate::wire::hex(&hash[..TOKEN_ID_LEN / 2])
}

/// Why a requested expiry is refused; the request changes nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadExpiry {
    /// Give one of them.
    #[error("give expires_in or expires_at, not both")]
    Both,
    /// Write a number and a unit.
    #[error("{0:?} is not a duration: write a whole number and s, m, h or d (90d)")]
    Duration(String),
    /// An expiry must lie ahead.
    #[error("expires_at {at} is not in the future (now {now})")]
    Past { at: Millis, now: Millis },
}

/// When a token minted at `now` expires, from a request's `expires_in` (a duration such as
/// `90d`, `12h`, `30m` or `3600s`) or `expires_at` (ms since the epoch), at most one of them;
/// the expiry must lie in the future.
pub fn expiry(
    now: Millis,
    expires_in: Option<&str>,
    expires_at: Option<Millis>,
) -> Result<Option<Millis>, BadExpiry> {
    let at = match (expires_in, expires_at) {
        (Some(_), Some(_)) => return Err(BadExpiry::Both),
        (Some(d), None) => now.saturating_add(parse_duration_ms(d)?),
        (None, Some(at)) => at,
        (None, None) => return Ok(None),
    };
    if at <= now {
        return Err(BadExpiry::Past { at, now });
    }
    Ok(Some(at))
}

/// A duration written as a positive whole number and a unit: `s`, `m`, `h` or `d`.
pub fn parse_duration_ms(text: &str) -> Result<Millis, BadExpiry> {
    let bad = || BadExpiry::Duration(text.to_string());
    let trimmed = text.trim();
    let unit_at = trimmed.len().checked_sub(1).ok_or_else(bad)?;
    if !trimmed.is_char_boundary(unit_at) {
        return Err(bad());
    }
    let (number, unit) = trimmed.split_at(unit_at);
    let unit_ms: u64 = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return Err(bad()),
    };
    let n: u64 = number.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(unit_ms).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_draining_factory_is_undrained_and_it_comes_back_online() {
        assert_eq!(
            FactoryStatus::Draining.undrained(),
            Ok(FactoryStatus::Online)
        );
        for other in [
            FactoryStatus::Online,
            FactoryStatus::Offline,
            FactoryStatus::Revoked,
        ] {
            assert_eq!(other.undrained(), Err(NotDraining(other.name())));
        }
    }

    #[test]
    fn a_session_ends_after_its_ttl_or_with_its_token_whichever_is_first() {
        assert_eq!(session_expiry(1_000, None), 1_000 + SESSION_TTL_MS);
        assert_eq!(session_expiry(1_000, Some(5_000)), 5_000);
        assert_eq!(
            session_expiry(1_000, Some(u64::MAX)),
            1_000 + SESSION_TTL_MS
        );
    }

    #[test]
    fn a_session_names_its_token_and_a_minted_token_names_no_session() {
        let mut t = Token {
            role: Role::Viewer,
            name: "v".into(),
            created_at: 0,
            revoked: false,
            expires_at: None,
            created_by: Some(format!("{SESSION_OF}0011223344556677")),
        };
        assert_eq!(t.session_of(), Some("0011223344556677"));
        t.created_by = Some("admin:alice".into());
        assert_eq!(t.session_of(), None);
        t.created_by = None;
        assert_eq!(t.session_of(), None);
    }

    fn token(expires_at: Option<Millis>) -> Token {
        Token {
            role: Role::Operator,
            name: "ci".into(),
            created_at: 0,
            revoked: false,
            expires_at,
            created_by: None,
        }
    }

    #[test]
    fn a_token_works_until_its_expiry_and_never_once_revoked() {
        assert_eq!(token(None).check(u64::MAX), Ok(()));
        assert_eq!(token(Some(100)).check(99), Ok(()));
        assert_eq!(token(Some(100)).check(100), Err(TokenRefusal::Expired(100)));
        let revoked = Token {
            revoked: true,
            ..token(Some(100))
        };
        assert_eq!(revoked.check(0), Err(TokenRefusal::Revoked));
    }

    #[test]
    fn an_expiry_is_one_future_time_from_a_duration_or_a_date() {
        assert_eq!(expiry(1_000, None, None), Ok(None));
        assert_eq!(expiry(1_000, Some("2h"), None), Ok(Some(7_201_000)));
        assert_eq!(expiry(1_000, Some("90d"), None), Ok(Some(7_776_001_000)));
        assert_eq!(expiry(1_000, None, Some(5_000)), Ok(Some(5_000)));
        assert!(
            expiry(1_000, None, Some(1_000)).is_err(),
            "now is not future"
        );
        assert!(expiry(1_000, Some("1h"), Some(5_000)).is_err(), "both");
        for bad in [
            "",
            "d",
            "0d",
            "5",
            "5w",
            "-5m",
            "1.5h",
            "99999999999999999d",
        ] {
            assert!(parse_duration_ms(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_token_id_is_the_hash_prefix_in_hex() {
        let mut hash = [0u8; 32];
        hash[0] = 0xab;
        hash[7] = 0x01;
        hash[8] = 0xff;
        assert_eq!(token_id(&hash), "ab00000000000001");
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn what_agents_report_on_every_platform_is_accepted() {
        for (os, arch) in [
            ("linux", "x86_64"),
            ("macos", "aarch64"),
            ("windows", "x86_64"),
            ("freebsd", "riscv64"),
            (std::env::consts::OS, std::env::consts::ARCH),
        ] {
            let caps = names(&["gpu", "tool:git", "lang.rust-1"]);
            assert_eq!(
                check_description(os, arch, &caps, &names(&["claude"])),
                Ok(())
            );
        }
    }

    #[test]
    fn a_bad_os_arch_or_capability_is_refused_with_every_problem_and_its_field() {
        let long = "a".repeat(PLATFORM_LEN_MAX_BYTES + 1);
        let problems = check_description(
            "Linux",
            &long,
            &names(&["ok", "<script>", ""]),
            &names(&["UPPER"]),
        )
        .unwrap_err();
        let fields: Vec<&str> = problems
            .iter()
            .map(|p| p.split_once(':').unwrap().0)
            .collect();
        assert_eq!(
            fields,
            [
                "os",
                "arch",
                "capabilities[1]",
                "capabilities[2]",
                "engine_classes[0]"
            ]
        );
        assert!(check_description("", "x86_64", &[], &[]).is_err());
        assert!(check_description("linux\n", "x86_64", &[], &[]).is_err());
        assert!(check_description("li nux", "x86_64", &[], &[]).is_err());
    }

    #[test]
    fn too_many_capabilities_are_refused_as_one_problem() {
        let caps: Vec<String> = (0..=FACTORY_CAPABILITIES_MAX)
            .map(|i| format!("c{i}"))
            .collect();
        assert_eq!(
            check_description("linux", "x86_64", &caps, &[])
                .unwrap_err()
                .len(),
            1
        );
        let at_max = &caps[..FACTORY_CAPABILITIES_MAX];
        assert_eq!(check_description("linux", "x86_64", at_max, &[]), Ok(()));
    }
}
