#!/usr/bin/env bash
# mailstack.sh runs a real Postfix + Dovecot mail stack on loopback for
# jirabridge's mail integration tests, from config files written into DIR.
# The packages' own /etc configs and systemd are never used.
#
#   mailstack.sh start DIR         install when missing, start, write DIR/env
#   mailstack.sh stop DIR          stop both daemons and wait for them
#   mailstack.sh restart-imap DIR  stop and start Dovecot only (tests use it)
#   mailstack.sh flush DIR         ask Postfix to deliver its queue now
#   mailstack.sh status DIR        exit 0 when both daemons run
#
# Postfix needs root. Ports are chosen free at first start and kept in DIR/env;
# override with MAILSTACK_SMTP_PORT, MAILSTACK_SUBMISSION_PORT,
# MAILSTACK_SMTPS_PORT, MAILSTACK_IMAP_PORT, MAILSTACK_IMAPS_PORT.
#
# Mail is accepted only for the test domain; everything else is rejected
# (reject_unauth_destination) and the relay transports are "error:", so
# nothing ever leaves the machine. Mail to user+detail@domain is delivered
# into the folder "detail" of user (created on delivery), which lets tests
# that run in parallel use separate folders.
set -euo pipefail

DOMAIN="${MAILSTACK_DOMAIN:-jirabridge.test}"
USERS=(bridge-a bridge-b ops)

# passvar prints the name of the variable that holds user $1's password.
passvar() {
	local v="${1^^}"
	echo "MAILSTACK_PASS_${v//-/_}"
}

die() { echo "mailstack: $*" >&2; exit 1; }

usage() { die "usage: $0 start|stop|restart-imap|flush|status DIR"; }

[ $# -eq 2 ] || usage
cmd="$1"
dir="$2"
mkdir -p "$dir"
dir="$(cd "$dir" && pwd)"
script="$(cd "$(dirname "$0")" && pwd)/$(basename "$0")"

# Unix socket paths are limited to 108 bytes: keep Dovecot's base_dir short
# even when DIR is long.
if [ ${#dir} -le 40 ]; then
	run="$dir/r"
else
	run="/tmp/jbms-$(printf %s "$dir" | md5sum | cut -c1-10)"
fi

need_root() {
	[ "$(id -u)" = 0 ] || die "Postfix refuses to run as a normal user; run as root (e.g. 'sudo make test')"
}

install_packages() {
	local missing=()
	command -v postfix >/dev/null 2>&1 || [ -x /usr/sbin/postfix ] || missing+=(postfix)
	[ -x /usr/sbin/dovecot ] || missing+=(dovecot-core)
	[ -e /usr/lib/dovecot/imap ] || missing+=(dovecot-imapd)
	[ -e /usr/lib/dovecot/lmtp ] || missing+=(dovecot-lmtpd)
	command -v openssl >/dev/null 2>&1 || missing+=(openssl)
	[ ${#missing[@]} -eq 0 ] && return 0
	echo "mailstack: installing ${missing[*]} (apt-get)" >&2
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	echo "postfix postfix/mailname string $DOMAIN" | debconf-set-selections
	export DEBIAN_FRONTEND=noninteractive
	# Keep the packages from starting system daemons with their /etc
	# configs (a system Dovecot would listen on 143 and 993).
	local rcd=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		rcd=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' >"$rcd"
		chmod 0755 "$rcd"
	fi
	local rc=0
	apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null || rc=$?
	[ -n "$rcd" ] && rm -f "$rcd"
	[ $rc -eq 0 ] || die "apt-get install ${missing[*]} failed (exit $rc)"
}

# used_ports lists, as 4-digit hex, the local ports of all TCP sockets; read
# once, because spawning processes per candidate port is slow on a busy
# machine.
used_ports=""
taken=" "
# pick_port VAR sets VAR to a free loopback port unless VAR is already set.
pick_port() {
	local var="$1" p hex i
	[ -n "${!var:-}" ] && return 0
	if [ -z "$used_ports" ]; then
		used_ports=" $(awk 'FNR>1 { split($2, a, ":"); printf "%s ", a[2] }' /proc/net/tcp /proc/net/tcp6 2>/dev/null) "
	fi
	for i in $(seq 1 200); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		printf -v hex '%04X' "$p"
		case "$taken$used_ports" in *" $p "* | *" $hex "*) continue ;; esac
		taken="$taken$p "
		printf -v "$var" '%s' "$p"
		return 0
	done
	die "no free port found"
}

# pid_alive reports whether $1 is a running process (zombies count as gone:
# PID 1 may reap exited daemons late).
pid_alive() {
	local pid="$1"
	[ -n "$pid" ] && [ -r "/proc/$pid/status" ] || return 1
	! grep -q '^State:[[:space:]]*Z' "/proc/$pid/status" 2>/dev/null
}

wait_gone() {
	local pid="$1" i
	for i in $(seq 1 "${2:-100}"); do
		pid_alive "$pid" || return 0
		sleep 0.05
	done
	return 1
}

postfix_pid() { head -1 "$dir/pq/pid/master.pid" 2>/dev/null | tr -d ' ' || true; }
dovecot_pid() { head -1 "$run/master.pid" 2>/dev/null | tr -d ' ' || true; }

load_env() {
	if [ -f "$dir/env" ]; then
		# shellcheck disable=SC1091
		. "$dir/env"
	fi
}

make_tls() {
	local t="$dir/tls"
	[ -s "$t/ca.crt" ] && [ -s "$t/server.crt" ] && return 0
	mkdir -p "$t"
	openssl ecparam -name prime256v1 -genkey -noout -out "$t/ca.key" 2>/dev/null
	openssl req -x509 -new -key "$t/ca.key" -days 3650 -subj "/CN=jirabridge test CA" \
		-addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
		-out "$t/ca.crt" 2>/dev/null
	openssl ecparam -name prime256v1 -genkey -noout -out "$t/server.key" 2>/dev/null
	openssl req -new -key "$t/server.key" -subj "/CN=localhost" -out "$t/server.csr" 2>/dev/null
	printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature\n' >"$t/ext.cnf"
	openssl x509 -req -in "$t/server.csr" -CA "$t/ca.crt" -CAkey "$t/ca.key" -CAcreateserial \
		-days 3650 -extfile "$t/ext.cnf" -out "$t/server.crt" 2>/dev/null
	chmod 0644 "$t/ca.crt" "$t/server.crt"
	chmod 0600 "$t/ca.key" "$t/server.key"
}

write_env() {
	local u v
	{
		echo "# written by scripts/mailstack.sh; shell-style KEY=VALUE"
		echo "MAILSTACK_DIR=$dir"
		echo "MAILSTACK_SCRIPT=$script"
		echo "MAILSTACK_HOST=127.0.0.1"
		echo "MAILSTACK_DOMAIN=$DOMAIN"
		echo "MAILSTACK_SMTP_PORT=$MAILSTACK_SMTP_PORT"
		echo "MAILSTACK_SUBMISSION_PORT=$MAILSTACK_SUBMISSION_PORT"
		echo "MAILSTACK_SMTPS_PORT=$MAILSTACK_SMTPS_PORT"
		echo "MAILSTACK_IMAP_PORT=$MAILSTACK_IMAP_PORT"
		echo "MAILSTACK_IMAPS_PORT=$MAILSTACK_IMAPS_PORT"
		echo "MAILSTACK_CA_FILE=$dir/tls/ca.crt"
		echo "MAILSTACK_USERS=\"${USERS[*]}\""
		for u in "${USERS[@]}"; do
			v="$(passvar "$u")"
			echo "$v=${!v}"
		done
	} >"$dir/env.tmp"
	mv "$dir/env.tmp" "$dir/env"
}

write_postfix() {
	local e="$dir/postfix/etc" u
	mkdir -p "$e" "$dir/pq" "$dir/pdata"
	chown postfix "$dir/pdata"
	: >"$e/vmailbox"
	for u in "${USERS[@]}"; do echo "$u@$DOMAIN ok" >>"$e/vmailbox"; done
	echo "postmaster@$DOMAIN ok" >>"$e/vmailbox"
	cat >"$e/main.cf" <<EOF
# jirabridge test stack: loopback only, test domain only, never relays.
compatibility_level = 3.6
config_directory = $e
queue_directory = $dir/pq
data_directory = $dir/pdata
mail_owner = postfix
maillog_file = $dir/log/postfix.log
maillog_file_prefixes = $dir/log
myhostname = mail.$DOMAIN
mydomain = $DOMAIN
myorigin = \$mydomain
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost =
relay_domains =
alias_maps =
alias_database =
biff = no
recipient_delimiter = +
virtual_mailbox_domains = $DOMAIN
virtual_mailbox_maps = texthash:$e/vmailbox
virtual_transport = lmtp:unix:$run/lmtp
local_transport = error:5.1.1 local delivery is disabled in the test stack
default_transport = error:5.7.1 the test stack never relays
relay_transport = error:5.7.1 the test stack never relays
smtpd_relay_restrictions = reject_unauth_destination
smtpd_recipient_restrictions = reject_unauth_destination, reject_unlisted_recipient
smtpd_sasl_type = dovecot
smtpd_sasl_path = $run/auth-client
smtpd_sasl_auth_enable = yes
smtpd_tls_auth_only = no
smtpd_tls_cert_file = $dir/tls/server.crt
smtpd_tls_key_file = $dir/tls/server.key
smtpd_tls_security_level = may
smtpd_tls_loglevel = 0
message_size_limit = 31457280
mailbox_size_limit = 0
in_flow_delay = 0
smtpd_error_sleep_time = 0
smtpd_soft_error_limit = 100
smtpd_hard_error_limit = 1000
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
lmtp_connection_cache_on_demand = yes
EOF
	local p="127.0.0.1"
	cat >"$e/master.cf" <<EOF
$p:$MAILSTACK_SMTP_PORT inet n - n - - smtpd
$p:$MAILSTACK_SUBMISSION_PORT inet n - n - - smtpd
  -o smtpd_tls_security_level=encrypt
$p:$MAILSTACK_SMTPS_PORT inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF
}

write_dovecot() {
	local d="$dir/dovecot" u v dh=""
	mkdir -p "$d/state" "$dir/mail"
	chown mail:mail "$dir/mail"
	: >"$d/users"
	for u in "${USERS[@]}"; do
		v="$(passvar "$u")"
		echo "$u:{PLAIN}${!v}::::::" >>"$d/users"
	done
	chown root:dovecot "$d/users"
	chmod 0640 "$d/users"
	[ -r /usr/share/dovecot/dh.pem ] && dh="ssl_dh = </usr/share/dovecot/dh.pem"
	cat >"$d/dovecot.conf" <<EOF
# jirabridge test stack: loopback only.
instance_name = jbms-$(printf %s "$dir" | md5sum | cut -c1-8)
base_dir = $run
state_dir = $d/state
log_path = $dir/log/dovecot.log
protocols = imap lmtp
listen = 127.0.0.1
ssl = yes
ssl_cert = <$dir/tls/server.crt
ssl_key = <$dir/tls/server.key
$dh
disable_plaintext_auth = no
auth_mechanisms = plain login cram-md5
auth_username_format = %Ln
auth_failure_delay = 0
auth_cache_size = 0
mail_location = maildir:$dir/mail/%n
mail_uid = mail
mail_gid = mail
first_valid_uid = 8
first_valid_gid = 8
mail_max_userip_connections = 200
recipient_delimiter = +
lmtp_save_to_detail_mailbox = yes
lda_mailbox_autocreate = yes
lda_mailbox_autosubscribe = yes
namespace inbox {
  inbox = yes
  separator = /
}
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%Ln $d/users
}
userdb {
  driver = static
  args = uid=mail gid=mail home=$dir/mail/%n
}
service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $MAILSTACK_IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $MAILSTACK_IMAPS_PORT
    ssl = yes
  }
}
service pop3-login {
  chroot =
}
service submission-login {
  chroot =
}
service anvil {
  chroot =
}
service lmtp {
  unix_listener lmtp {
    mode = 0666
  }
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}
EOF
}

start_dovecot() {
	pid_alive "$(dovecot_pid)" && return 0
	rm -f "$run/master.pid" # a stale or zombie master's
	mkdir -p "$run"
	chmod 0755 "$run"
	/usr/sbin/dovecot -c "$dir/dovecot/dovecot.conf" </dev/null >>"$dir/log/dovecot.out" 2>&1 ||
		die "dovecot did not start; see $dir/log/dovecot.log and $dir/log/dovecot.out: $(tail -3 "$dir/log/dovecot.out" "$dir/log/dovecot.log" 2>/dev/null)"
	local i
	for i in $(seq 1 100); do
		[ -S "$run/lmtp" ] && [ -S "$run/auth-client" ] && return 0
		sleep 0.02
	done
	die "dovecot started but its sockets did not appear in $run; see $dir/log/dovecot.log"
}

stop_dovecot() {
	local pid
	pid="$(dovecot_pid)"
	pid_alive "$pid" || return 0
	kill -TERM "$pid" 2>/dev/null || true
	# Dovecot waits for its children; on a busy machine that can take
	# seconds. Kill the whole process group only after 15 s.
	wait_gone "$pid" 300 || { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" || die "dovecot (pid $pid) did not stop"; }
	# An exited master that PID 1 has not reaped yet still passes Dovecot's
	# own "already running" check; its pid file must go.
	rm -f "$run/master.pid"
}

start_postfix() {
	pid_alive "$(postfix_pid)" && return 0
	/usr/sbin/postfix -c "$dir/postfix/etc" start </dev/null >>"$dir/log/postfix.out" 2>&1 ||
		die "postfix did not start; see $dir/log/postfix.log and $dir/log/postfix.out: $(tail -3 "$dir/log/postfix.out" "$dir/log/postfix.log" 2>/dev/null)"
}

stop_postfix() {
	local pid
	pid="$(postfix_pid)"
	pid_alive "$pid" || return 0
	/usr/sbin/postfix -c "$dir/postfix/etc" stop </dev/null >>"$dir/log/postfix.out" 2>&1 || kill -TERM "$pid" 2>/dev/null || true
	wait_gone "$pid" || { kill -KILL "$pid" 2>/dev/null || true; wait_gone "$pid" || die "postfix (pid $pid) did not stop"; }
}

wait_port() {
	local p="$1" i
	for i in $(seq 1 100); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && return 0
		sleep 0.02
	done
	die "nothing listens on 127.0.0.1:$p; see $dir/log/"
}

do_start() {
	need_root
	install_packages
	chmod 0755 "$dir"
	mkdir -p "$dir/log"
	load_env
	local u v
	# Settings from the environment win, then those of an earlier start.
	pick_port MAILSTACK_SMTP_PORT
	pick_port MAILSTACK_SUBMISSION_PORT
	pick_port MAILSTACK_SMTPS_PORT
	pick_port MAILSTACK_IMAP_PORT
	pick_port MAILSTACK_IMAPS_PORT
	local rnd
	rnd="$(openssl rand -hex 48)"
	for u in "${USERS[@]}"; do
		v="$(passvar "$u")"
		if [ -z "${!v:-}" ]; then printf -v "$v" '%s' "${rnd:0:24}"; fi
		rnd="${rnd:24}"
	done
	if pid_alive "$(postfix_pid)" && pid_alive "$(dovecot_pid)"; then
		echo "mailstack: already running ($dir/env)"
		return 0
	fi
	make_tls
	write_postfix
	write_dovecot
	# Postfix waits about 2 s when its config files are under 2 s old.
	find "$dir/postfix" "$dir/dovecot" "$dir/tls" -exec touch -h -d '-10 seconds' {} +
	write_env
	start_dovecot
	start_postfix
	wait_port "$MAILSTACK_SMTP_PORT"
	wait_port "$MAILSTACK_IMAP_PORT"
	echo "mailstack: running; settings in $dir/env"
}

do_stop() {
	# Both take about a second to exit; stop them side by side.
	local rc=0
	stop_postfix &
	local pf=$!
	stop_dovecot || rc=$?
	wait "$pf" || rc=$?
	[ $rc -eq 0 ] || exit $rc
	if [ "$run" != "$dir/r" ]; then rm -rf "$run"; fi
}

case "$cmd" in
start) do_start ;;
stop) do_stop ;;
restart-imap)
	need_root
	load_env
	stop_dovecot
	start_dovecot
	wait_port "$MAILSTACK_IMAP_PORT"
	# Deliver what Postfix deferred while Dovecot was away now.
	/usr/sbin/postqueue -c "$dir/postfix/etc" -f || true
	;;
flush)
	need_root
	/usr/sbin/postqueue -c "$dir/postfix/etc" -f
	;;
status)
	pid_alive "$(postfix_pid)" && pid_alive "$(dovecot_pid)"
	;;
*) usage ;;
esac
