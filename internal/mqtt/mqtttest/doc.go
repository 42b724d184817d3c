// Package mqtttest is test support for the MQTT code, in the way of
// net/http/httptest: a real mosquitto broker started for one test on a
// loopback port (StartBroker), and a subscriber that keeps every message it
// receives and waits, with a deadline, for what a test expects (Subscribe,
// Recorder.WaitFor, Recorder.WaitLast). It is ordinary Go code so that the
// tests of several packages share it (internal/mqtt, internal/e2e/events);
// only tests import it, never the module or its commands.
//
// # mosquitto
//
// StartBroker and MosquittoPath need the mosquitto binary: Debian's package
// mosquitto (apt-get install mosquitto), found on PATH or at
// /usr/sbin/mosquitto. When it is missing, the test calling them is skipped
// (t.Skip), unless the environment variable CI is "true": there it fails
// (t.Fatal), so that a CI machine without mosquitto cannot pass the broker
// tests by skipping them all.
//
// Each broker has its own temporary config: a listener on 127.0.0.1 only, no
// persistence (a restarted broker has lost every retained message, like a
// broker that lost its store), anonymous clients allowed unless the extra
// config says otherwise, and its log (errors, warnings, notices) kept for
// the failure messages. It is killed (SIGKILL) when the test ends.
package mqtttest
