// Command kazashi-crlbench measures CRL import, lookups, delta apply and
// daemon start at national scale (`make bench`; see package
// provisioning/crlbench for what each number is).
//
//	kazashi-crlbench -bin DIR [-sizes 1000000,10000000] [-cache DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kazashi/kazashi/provisioning/crlbench"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "kazashi-crlbench:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) > 0 {
		switch args[0] {
		case "stdlib-parse":
			return crlbench.StdlibParse(args[1])
		case "lookup":
			fs := flag.NewFlagSet("lookup", flag.ContinueOnError)
			index := fs.String("index", "", "")
			ca := fs.String("ca", "", "")
			n := fs.Int("n", 0, "")
			if err := fs.Parse(args[1:]); err != nil {
				return err
			}
			return crlbench.Lookup(ctx, os.Stdout, *index, *ca, *n)
		}
	}
	fs := flag.NewFlagSet("kazashi-crlbench", flag.ContinueOnError)
	bin := fs.String("bin", "bin", "directory holding kazashictl and kazashid")
	sizes := fs.String("sizes", "1000000,10000000", "CRL sizes (entries), comma-separated")
	cache, _ := os.UserCacheDir()
	cacheDir := fs.String("cache", filepath.Join(cache, "kazashi-crlbench"), "where generated CRLs are kept between runs")
	work := fs.String("work", "", "scratch directory (default: the system temp dir)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	o := crlbench.Options{CacheDir: *cacheDir, WorkDir: *work, Out: os.Stdout, Log: os.Stderr,
		Kazashictl: filepath.Join(*bin, "kazashictl"), Kazashid: filepath.Join(*bin, "kazashid"),
		DeltaAdded: 10000, DeltaRemoved: 10000}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Self = self
	for _, s := range strings.Split(*sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			return fmt.Errorf("-sizes: %q", s)
		}
		o.Sizes = append(o.Sizes, n)
	}
	_, err = crlbench.Run(ctx, o)
	return err
}
