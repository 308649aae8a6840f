//! When an authorization request may reuse the browser's session: OIDC `prompt` and `max_age`
//! (OpenID Connect Core §3.1.2.1) on `/oauth2/authorize`, and CentralAuth's `affirm=1` on
//! `/login`.
//!
//! - `prompt=none`: never show a page. A live session of the organization (young enough for
//!   `max_age`) finishes at once; otherwise the client gets `error=login_required`.
//! - `prompt=login` (and `affirm=1`): ask for the credentials again even with a session.
//! - `prompt=select_account`: there is no account chooser (one session per browser and
//!   organization), so the login form is shown, where any account can log in.
//! - `prompt=consent`: there is no consent screen: every client of an organization is that
//!   organization's own (first-party) app, so consent is satisfied; it changes nothing.
//! - `none` together with any other value is `invalid_request`; values this server does not
//!   know (such as `create`) are ignored, as OIDC allows.
//! - `max_age=N`: a session whose login (`auth_time`) is more than N seconds old is not reused;
//!   `max_age=0` is `prompt=login`. ID tokens always carry `auth_time`.
//!
//! The CentralAuth `/login` endpoint has no `prompt` or `max_age` (its clients never send
//! them): `affirm=1` is its `prompt=login`.

/// What an authorization request asks of the session.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Prompt {
    /// `prompt=none`: no page may be shown.
    pub none: bool,
    /// `prompt=login`, `prompt=select_account` or `affirm=1`: show the login form.
    pub reauthenticate: bool,
    /// `max_age`, seconds.
    pub max_age: Option<i64>,
}

/// A malformed `prompt` or `max_age`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PromptError {
    /// `none` with another value.
    #[error("prompt=none cannot be combined with other prompt values")]
    NoneWithOthers,
    /// `max_age` is not a non-negative whole number of seconds.
    #[error("max_age must be a non-negative whole number of seconds")]
    MaxAge,
}

/// What to do with the browser's session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Finish at once with the session.
    Reuse,
    /// Show the login form.
    Authenticate,
    /// Redirect with `error=login_required` (`prompt=none` and no usable session).
    LoginRequired,
}

impl Prompt {
    /// Parses `prompt` (space-separated values) and `max_age`.
    pub fn parse(prompt: Option<&str>, max_age: Option<&str>) -> Result<Prompt, PromptError> {
        let values: Vec<&str> = prompt
            .unwrap_or_default()
            .split(' ')
            .filter(|v| !v.is_empty())
            .collect();
        let none = values.contains(&"none");
        if none && values.len() > 1 {
            return Err(PromptError::NoneWithOthers);
        }
        let max_age = match max_age {
            None => None,
            Some(v) if !v.is_empty() && v.len() <= 10 && v.bytes().all(|b| b.is_ascii_digit()) => {
                Some(v.parse().map_err(|_| PromptError::MaxAge)?)
            }
            Some(_) => return Err(PromptError::MaxAge),
        };
        Ok(Prompt {
            none,
            reauthenticate: values.iter().any(|v| matches!(*v, "login" | "select_account")),
            max_age,
        })
    }

    /// `affirm=1` (CentralAuth) or `prompt=login`.
    pub fn login() -> Prompt {
        Prompt {
            reauthenticate: true,
            ..Prompt::default()
        }
    }

    /// The decision for a browser whose live session of the organization logged in at
    /// `auth_time` (`None`: no such session), at `now`.
    pub fn decide(&self, auth_time: Option<i64>, now: i64) -> Decision {
        let too_old = |t: i64| self.max_age.is_some_and(|max| now - t > max || max == 0);
        match auth_time {
            Some(t) if !self.reauthenticate && !too_old(t) => Decision::Reuse,
            _ if self.none => Decision::LoginRequired,
            _ => Decision::Authenticate,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decide(prompt: Option<&str>, max_age: Option<&str>, auth_time: Option<i64>) -> Decision {
        Prompt::parse(prompt, max_age).unwrap().decide(auth_time, 1000)
    }

    #[test]
    fn prompt_values_and_max_age() {
        use Decision::*;
        assert_eq!(decide(None, None, Some(0)), Reuse);
        assert_eq!(decide(None, None, None), Authenticate);
        assert_eq!(decide(Some("none"), None, Some(0)), Reuse);
        assert_eq!(decide(Some("none"), None, None), LoginRequired);
        assert_eq!(decide(Some("login"), None, Some(999)), Authenticate);
        assert_eq!(decide(Some("select_account"), None, Some(999)), Authenticate);
        assert_eq!(
            decide(Some("consent"), None, Some(999)),
            Reuse,
            "first-party: satisfied"
        );
        assert_eq!(decide(Some("login consent"), None, Some(999)), Authenticate);
        assert_eq!(
            decide(Some("create"), None, Some(999)),
            Reuse,
            "unknown values are ignored"
        );
        assert_eq!(decide(None, Some("60"), Some(940)), Reuse);
        assert_eq!(decide(None, Some("60"), Some(939)), Authenticate);
        assert_eq!(decide(Some("none"), Some("60"), Some(939)), LoginRequired);
        assert_eq!(
            decide(None, Some("0"), Some(1000)),
            Authenticate,
            "max_age=0 is prompt=login"
        );
        assert_eq!(Prompt::login().decide(Some(1000), 1000), Authenticate);
    }

    #[test]
    fn malformed_requests_are_refused() {
        assert_eq!(
            Prompt::parse(Some("none login"), None),
            Err(PromptError::NoneWithOthers)
        );
        assert_eq!(
            Prompt::parse(Some("consent none"), None),
            Err(PromptError::NoneWithOthers)
        );
        for bad in ["-1", "1.5", "abc", "", "99999999999"] {
            assert_eq!(Prompt::parse(None, Some(bad)), Err(PromptError::MaxAge), "{bad}");
        }
    }
}
