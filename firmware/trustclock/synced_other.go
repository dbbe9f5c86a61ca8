//go:build !linux

package trustclock

// SyncedFromAdjtimex returns a Synced function. Outside Linux there is no
// portable way to ask, so it always reports false (unsynchronised), which
// makes the ahead rule of MaxUnsyncedAhead apply.
func SyncedFromAdjtimex() func() bool {
	return func() bool { return false }
}
