package uplink

import "time"

// Schemas of the documents this package publishes (gateway/schema holds
// their JSON Schemas).
const (
	HealthSchema    = "kazashi.health/v1"
	TelemetrySchema = "kazashi.telemetry/v1"
)

// Health is retained on <prefix>/<device>/status/health and republished
// whenever an alarm is raised or cleared: what a fleet manager must act on.
type Health struct {
	Schema string    `json:"schema"`
	Device string    `json:"device_id"`
	Time   time.Time `json:"time"`
	// OK is true when no alarm is active.
	OK     bool    `json:"ok"`
	Alarms []Alarm `json:"alarms"`
}

// Alarm codes.
const (
	// AlarmOutboxFull: the outbox reached its bound; new taps are refused
	// ("could not be recorded") until the broker takes the backlog.
	AlarmOutboxFull = "outbox-full"
	// AlarmStorage: the outbox could not write (disk full, I/O error).
	AlarmStorage = "storage-failed"
	// AlarmQuarantine: messages were refused by the broker (or would be:
	// outside this device's topics, over the size limit) and are kept
	// aside; the count is in Detail.
	AlarmQuarantine = "quarantine"
	// AlarmBroker: no connection to the broker (only raised after a grace
	// period, so a reconnect does not flap it).
	AlarmBroker = "broker-unreachable"
	// AlarmReader: the NFC frontend is faulty.
	AlarmReader = "reader-fault"
)

// Alarm is one active condition.
type Alarm struct {
	Code    string    `json:"code"`
	Message string    `json:"message"` // plain words for the fleet manager; no personal data
	Since   time.Time `json:"since"`
	Count   int       `json:"count,omitempty"`
}

// Telemetry is published every interval on <prefix>/<device>/telemetry.
type Telemetry struct {
	Schema     string    `json:"schema"`
	Device     string    `json:"device_id"`
	Time       time.Time `json:"time"`
	TimeSource string    `json:"time_source"`
	Firmware   string    `json:"firmware"`
	UptimeS    int64     `json:"uptime_s"`
	Outbox     struct {
		Depth       int    `json:"depth"`
		Bytes       int64  `json:"bytes"`
		OldestAgeS  *int64 `json:"oldest_age_s,omitempty"`
		Quarantined int    `json:"quarantined"`
		Full        bool   `json:"full"`
		Delivered   uint64 `json:"delivered"` // since start
	} `json:"outbox"`
	RevocationAgeS *int64        `json:"revocation_age_s,omitempty"`
	Reader         *ReaderHealth `json:"reader,omitempty"`
}

// ReaderHealth is the NFC frontend's part of the telemetry.
type ReaderHealth struct {
	State  string         `json:"state"` // e.g. "ready", "fault", "resetting"
	Resets int            `json:"resets"`
	Errors map[string]int `json:"errors,omitempty"` // per kind
}
