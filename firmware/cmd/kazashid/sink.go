package main

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/kazashi/kazashi/firmware/tap"
	"github.com/kazashi/kazashi/gateway/outbox"
)

// eventSink adapts the durable outbox to tap.Sink: an event is on disk
// (fsynced) when Publish returns nil.
type eventSink struct {
	outbox  *outbox.Outbox
	deliver *outbox.Deliverer
	topic   string
}

func (s *eventSink) Publish(ctx context.Context, e tap.Event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("sink: %w", err)
	}
	if _, err := s.outbox.Enqueue(ctx, e.ID, s.topic, b); err != nil {
		return err
	}
	s.deliver.Notify()
	return nil
}
