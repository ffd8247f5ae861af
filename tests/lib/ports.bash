# Free loopback ports for a private stack: sourced by tests/run-integration.sh
# and bench/run-bench.sh.

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pick_port: a loopback port nobody listens on (nor on the next two, in case
# deploy.sh derives other ports from it), probed from a random base below the
# kernel's ephemeral range: a port in that range may be held by an outgoing
# connection, which a probe cannot see, and nginx's bind() would then fail.
pick_port() {
  local lo=10000 hi=32767 eph p i n base
  if read -r eph _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null && ((eph > lo + 1000)); then
    hi=$((eph - 1))
  fi
  n=$((hi - lo - 2))
  base=$((RANDOM % n))
  for ((i = 0; i < 300; i++)); do
    p=$((lo + (base + i * 3) % n))
    if ! port_in_use "$p" && ! port_in_use $((p + 1)) && ! port_in_use $((p + 2)); then
      echo "$p"
      return 0
    fi
  done
  return 1
}
