// Package topics is the MQTT topic tree of a Kazashi deployment. Every
// device owns the subtree <prefix>/<device>/ and nothing else; the shipped
// Mosquitto ACL (deploy/mosquitto) grants exactly that, with the device id
// taken from the CN of the device's client certificate.
//
//	<prefix>/<device>/events             tap events, QoS 1, not retained       kazashi.tap/v2
//	<prefix>/<device>/status             online/offline, retained, last will   kazashi.status/v1
//	<prefix>/<device>/status/health      alarms (outbox, storage, reader), retained kazashi.health/v1
//	<prefix>/<device>/status/revocation  clock and revocation store, retained  (trustlayer.Status)
//	<prefix>/<device>/telemetry          periodic counters, QoS 0/1, not retained kazashi.telemetry/v1
//	<prefix>/<device>/cmd/<name>         commands to the device (fleet issue)  kazashi.cmd/v1
//	<prefix>/<device>/reply/<name>       the device's replies, same correlation_id kazashi.reply/v1
//
// The device publishes under events, status, status/#, telemetry and
// reply/#, and subscribes to cmd/#. The backend subscribes to
// <prefix>/+/events (through a shared subscription) and the status and
// telemetry subtrees, and publishes to <prefix>/+/cmd/#.
package topics

import (
	"errors"
	"fmt"
	"strings"
)

// Tree names the topics of one device.
type Tree struct {
	Prefix string // e.g. "kazashi"
	Device string // the device id: one topic level
}

// New checks prefix and device: non-empty, no wildcard, no NUL; the device
// id is a single level (no '/').
func New(prefix, device string) (Tree, error) {
	if prefix == "" || device == "" {
		return Tree{}, errors.New("topics: empty prefix or device id")
	}
	if strings.ContainsAny(prefix, "+#\x00") || strings.HasPrefix(prefix, "$") {
		return Tree{}, fmt.Errorf("topics: prefix %q: no wildcards, NUL or leading $", prefix)
	}
	if strings.ContainsAny(device, "/+#\x00") {
		return Tree{}, fmt.Errorf("topics: device id %q: one topic level without wildcards", device)
	}
	return Tree{Prefix: prefix, Device: device}, nil
}

// Root is <prefix>/<device>.
func (t Tree) Root() string { return t.Prefix + "/" + t.Device }

func (t Tree) Events() string     { return t.Root() + "/events" }
func (t Tree) Status() string     { return t.Root() + "/status" }
func (t Tree) Health() string     { return t.Root() + "/status/health" }
func (t Tree) Revocation() string { return t.Root() + "/status/revocation" }
func (t Tree) Telemetry() string  { return t.Root() + "/telemetry" }

// Command is the topic of command name; CommandFilter all of them.
func (t Tree) Command(name string) string { return t.Root() + "/cmd/" + name }
func (t Tree) CommandFilter() string      { return t.Root() + "/cmd/#" }

// Reply is the topic of the replies to command name.
func (t Tree) Reply(name string) string { return t.Root() + "/reply/" + name }

// Owns reports whether topic lies in the device's subtree and is one the
// device may publish to (events, status, status/…, telemetry, reply/…).
func (t Tree) Owns(topic string) bool {
	rest, ok := strings.CutPrefix(topic, t.Root()+"/")
	if !ok {
		return false
	}
	switch {
	case rest == "events", rest == "status", rest == "telemetry":
		return true
	case strings.HasPrefix(rest, "status/"), strings.HasPrefix(rest, "reply/"):
		return len(rest) > len("reply/") && !strings.ContainsAny(rest, "+#")
	}
	return false
}

// EventsFilter matches every device's events under prefix.
func EventsFilter(prefix string) string { return prefix + "/+/events" }

// Shared turns filter into a shared subscription of group ($share/group/
// filter, MQTT 5 §4.8.2; Mosquitto, EMQX, VerneMQ and HiveMQ accept it from
// MQTT 3.1.1 clients too): each message goes to one member of the group.
func Shared(group, filter string) string { return "$share/" + group + "/" + filter }
