package holder_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/kazashi/kazashi/firmware/holder"
)

func ExampleCheckFormat() {
	pw := []byte("kz7qw3rt")
	holder.Canonicalize(holder.SignPassword, pw)
	fmt.Println(string(pw), holder.CheckFormat(holder.SignPassword, pw))
	fmt.Println(holder.CheckFormat(holder.AuthPIN, []byte("12a4")))
	// Output:
	// KZ7QW3RT <nil>
	// holder: format: auth-pin needs exactly 4 digits
}

func ExampleServer() {
	dir, _ := os.MkdirTemp("", "holder")
	defer os.RemoveAll(dir)
	ctx := context.Background()
	s, err := holder.Listen(filepath.Join(dir, "run", "holder.sock"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer s.Close()

	// The PIN pad.
	c, err := holder.Dial(ctx, filepath.Join(dir, "run", "holder.sock"))
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()
	go func() {
		r, _ := c.Next(ctx)
		fmt.Println("asked for", r.Kind, "tries left", r.TriesLeft)
		fmt.Println(c.Answer(ctx, []byte("12")))
		c.Answer(ctx, []byte("4729"))
	}()

	// The pipeline.
	secret, err := s.Ask(ctx, holder.Request{Kind: holder.AuthPIN, TriesLeft: 3, Profile: "pin-auth"})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer secret.Zero()
	fmt.Println("got", secret, len(secret.Bytes()), "bytes")
	// Output:
	// asked for auth-pin tries left 3
	// holder: format: auth-pin needs exactly 4 digits
	// got [secret] 4 bytes
}
