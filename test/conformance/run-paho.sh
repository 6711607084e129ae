#!/bin/sh
# Runs Eclipse Paho's MQTT 3.1.1 interoperability suite (client_test.py, its will test included)
# against the real broker started by paho-broker.ts. The suite is not part of this repository:
#   sh test/conformance/run-paho.sh /path/to/paho.mqtt.testing/interoperability
# Its own option parsing is broken under Python 3 (`-h` is read as --help, and unittest.main() then
# rejects the remaining options), so it is started through runpy with unittest's arguments fixed.
set -eu
suite_dir=${1:?usage: run-paho.sh PAHO_INTEROPERABILITY_DIR}
repo_dir=$(cd "$(dirname "$0")/../.." && pwd)
port_file=$(mktemp)
node --import tsx "$repo_dir/test/conformance/paho-broker.ts" 0 >"$port_file" &
broker_pid=$!
trap 'kill "$broker_pid" 2>/dev/null || true; rm -f "$port_file"' EXIT
while [ ! -s "$port_file" ]; do
  kill -0 "$broker_pid" || { echo "broker did not start" >&2; exit 1; }
  sleep 0.2
done
port=$(head -n 1 "$port_file")
cd "$suite_dir"
python3 -c 'import runpy, unittest
main = unittest.main
unittest.main = lambda: main(argv=["client_test", "-v", "Test", "Test.will_message_test"])
runpy.run_path("client_test.py", run_name="__main__")' --hostname=127.0.0.1 --port="$port"
