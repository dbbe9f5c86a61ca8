package brokertest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/kazashi/kazashi/gateway/mqtt/mqtttest"
)

// repoRoot is the repository's root, found from this file's location, so
// tests of any package can run the shipped files.
func repoRoot() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("brokertest: no caller information")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// ConfPath and ACLPath are the shipped Mosquitto configuration and ACL.
func ConfPath() string { return filepath.Join(repoRoot(), "deploy", "mosquitto", "kazashi.conf") }
func ACLPath() string  { return filepath.Join(repoRoot(), "deploy", "mosquitto", "acl") }

// Shipped is a Mosquitto running the shipped configuration.
type Shipped struct {
	Mosquitto *mqtttest.Mosquitto
	URL       string // tls://127.0.0.1:<port>
	CA        *CA    // issues the broker's certificate; clients it issues are admitted
	Dir       string // certificates and the broker's files (world-traversable)
}

// StartShipped generates a CA and a server certificate for 127.0.0.1 and
// starts Mosquitto with the shipped kazashi.conf, in which only the
// listener port (bound to 127.0.0.1), the cafile/certfile/keyfile/acl_file
// paths and persistence_location are replaced. acl_file points at the
// shipped ACL itself, unchanged. Client certificates come from CA.Client.
func StartShipped(tb testing.TB) *Shipped {
	tb.Helper()
	dir := brokerDir(tb)
	ca := NewCA(tb, dir, "ca", "Kazashi test device CA")
	server := ca.Server(tb, "server", []net.IP{net.IPv4(127, 0, 0, 1)}, "localhost")
	persist := filepath.Join(dir, "persist")
	if err := os.Mkdir(persist, 0o700); err != nil {
		tb.Fatal(err)
	}
	// Running as root, mosquitto drops to the "mosquitto" user before it
	// reads its key and ACL and writes its database (mosquitto.conf(5),
	// user), as in production: give it what the package's install gives it.
	brokerOwns(tb, server.KeyFile, persist)
	shipped := readConf(tb)
	conf := func(port int, _ string) string {
		return rewriteConf(tb, shipped, map[string]string{
			"listener":             fmt.Sprintf("%d 127.0.0.1", port),
			"cafile":               ca.CertFile,
			"certfile":             server.CertFile,
			"keyfile":              server.KeyFile,
			"acl_file":             ACLPath(),
			"persistence_location": persist + "/",
		})
	}
	m := mqtttest.StartMosquittoConf(tb, conf)
	return &Shipped{Mosquitto: m, URL: "tls://" + m.Addr(), CA: ca, Dir: dir}
}

// brokerDir is a fresh directory the broker's user can traverse (t.TempDir
// sits in a 0700 directory of the test's user).
func brokerDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "kazashi-brokertest-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// brokerOwns hands paths to the mosquitto user when the test runs as root.
func brokerOwns(t testing.TB, paths ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		return // mosquitto keeps our identity and can read our files
	}
	u, err := user.Lookup("mosquitto")
	if err != nil {
		t.Fatalf("running as root and no mosquitto user to hand the broker's files to: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	for _, p := range paths {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
}

func readConf(t testing.TB) string {
	t.Helper()
	b, err := os.ReadFile(ConfPath())
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// rewriteConf replaces the arguments of the given directives, each of which
// must occur exactly once (uncommented) in conf; every other line is kept.
func rewriteConf(t testing.TB, conf string, repl map[string]string) string {
	t.Helper()
	seen := make(map[string]int)
	var out strings.Builder
	sc := bufio.NewScanner(strings.NewReader(conf))
	for sc.Scan() {
		line := sc.Text()
		if f := strings.Fields(line); len(f) > 0 {
			if v, ok := repl[f[0]]; ok {
				seen[f[0]]++
				line = f[0] + " " + v
			}
		}
		out.WriteString(line + "\n")
	}
	for k := range repl {
		if seen[k] != 1 {
			t.Fatalf("shipped %s: directive %q occurs %d times, want exactly once", ConfPath(), k, seen[k])
		}
	}
	return out.String()
}
