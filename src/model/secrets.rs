//! Secret-shaped strings in what agents post. An agent holds its model API key and its own
//! MCP token, and reads whatever its checkout holds: anything it writes for GitHub — a
//! comment, a question, a pull request's title or body, the summary that becomes a commit
//! message — is scrubbed of what looks like a credential before it leaves foreman.

/// Token prefixes GitHub issues (classic and fine-grained personal, OAuth, user-to-server,
/// installation, refresh tokens).
const GITHUB_PREFIXES: &[&str] = &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"];
/// Other API keys: OpenAI and Anthropic keys start with `sk-`; foreman's MCP tokens with `fm_`.
const KEY_PREFIXES: &[&str] = &["sk-", "fm_"];
/// Characters shorter than this after a prefix are not taken for a key (`sk-learn`).
const MIN_KEY_BODY: usize = 20;
/// A known secret value shorter than this is not looked for (it would match ordinary text).
const MIN_KNOWN: usize = 8;

/// `text` with every secret-shaped string replaced by `[REDACTED <kind>]`, and the kinds
/// replaced, in order. `known` are secret values to remove wherever they appear (foreman's
/// webhook secret, the agents' API keys).
pub fn scrub(text: &str, known: &[&str]) -> (String, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut out = scrub_pem(text, &mut found);
    for secret in known.iter().filter(|s| s.len() >= MIN_KNOWN) {
        if out.contains(secret) {
            out = out.replace(secret, "[REDACTED secret]");
            found.push("secret");
        }
    }
    for prefix in GITHUB_PREFIXES {
        out = scrub_prefixed(&out, prefix, "GitHub token", &mut found);
    }
    for prefix in KEY_PREFIXES {
        out = scrub_prefixed(&out, prefix, "API key", &mut found);
    }
    (out, found)
}

/// Replaces PEM blocks (`-----BEGIN …-----` to the matching `-----END …-----`, or to the end
/// when unterminated).
fn scrub_pem(text: &str, found: &mut Vec<&'static str>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("-----BEGIN ") {
        out.push_str(&rest[..start]);
        found.push("private key");
        out.push_str("[REDACTED private key]");
        let after = &rest[start..];
        rest = match after.find("-----END ") {
            Some(end) => {
                let tail = &after[end + "-----END ".len()..];
                match tail.find("-----") {
                    Some(close) => &tail[close + 5..],
                    None => "",
                }
            }
            None => "",
        };
    }
    out.push_str(rest);
    out
}

/// Replaces `prefix` followed by at least [`MIN_KEY_BODY`] key characters, where the prefix
/// starts a word.
fn scrub_prefixed(
    text: &str,
    prefix: &str,
    kind: &'static str,
    found: &mut Vec<&'static str>,
) -> String {
    let is_key = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find(prefix) {
        out.push_str(&rest[..at]);
        // What precedes it, across earlier rounds too: only a prefix that starts a word counts.
        let starts_word = out.chars().next_back().is_none_or(|c| !is_key(c));
        let body_len: usize = rest[at + prefix.len()..]
            .chars()
            .take_while(|c| is_key(*c))
            .map(char::len_utf8)
            .sum();
        if starts_word && body_len >= MIN_KEY_BODY {
            out.push_str(&format!("[REDACTED {kind}]"));
            found.push(kind);
            rest = &rest[at + prefix.len() + body_len..];
        } else {
            out.push_str(prefix);
            rest = &rest[at + prefix.len()..];
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_keys_and_private_keys_are_redacted() {
        let text = "my token ghs_16C7e42F292c6912E7710c838347Ae178B4a and \
                    key=sk-ant-api03-abcdefghijklmnopqrstuvwx, mcp fm_0123456789abcdef0123456789abcdef\n\
                    -----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\nbye";
        let (clean, kinds) = scrub(text, &[]);
        assert_eq!(
            clean,
            "my token [REDACTED GitHub token] and key=[REDACTED API key], mcp [REDACTED API \
             key]\n[REDACTED private key]\nbye"
        );
        assert_eq!(kinds.len(), 4, "{kinds:?}");
    }

    #[test]
    fn ordinary_text_is_kept_and_known_secrets_go() {
        for text in [
            "use sk-learn here",
            "the ghs_ prefix",
            "task-sk-1234567890123456789012",
        ] {
            assert_eq!(scrub(text, &[]), (text.to_owned(), vec![]), "{text}");
        }
        let (clean, kinds) = scrub("the secret is hunter2-webhook!", &["hunter2-webhook", "x"]);
        assert_eq!(clean, "the secret is [REDACTED secret]!");
        assert_eq!(kinds, ["secret"]);
        let (clean, _) = scrub("-----BEGIN PRIVATE KEY-----\nMII…", &[]);
        assert_eq!(clean, "[REDACTED private key]");
    }
}
