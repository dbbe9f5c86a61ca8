//go:build linux

package trustclock

import "syscall"

// timeError is TIME_ERROR, the clock state adjtimex(2) returns while the
// kernel considers the clock unsynchronised (STA_UNSYNC set, e.g. before
// NTP has disciplined it, or after a step without a time daemon).
const timeError = 5

// SyncedFromAdjtimex returns a Synced function that asks the kernel, with
// adjtimex(2) in read-only mode (modes = 0: no privileges needed, no device
// opened), whether the system clock is synchronised: it is unless the
// returned clock state is TIME_ERROR or the call fails. systemd-timesyncd,
// chrony and ntpd all clear STA_UNSYNC once synchronised.
func SyncedFromAdjtimex() func() bool {
	return func() bool {
		var tx syscall.Timex // Modes 0: read only
		state, err := syscall.Adjtimex(&tx)
		return err == nil && state != timeError
	}
}
