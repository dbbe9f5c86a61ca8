package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/uplink"
)

// eventSink adapts the uplink to tap.Sink: an event is on disk (fsynced)
// when Publish returns nil.
type eventSink struct {
	uplink *uplink.Uplink
}

func (s *eventSink) Publish(ctx context.Context, e tap.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	return s.uplink.Record(ctx, e.ID, b)
}
