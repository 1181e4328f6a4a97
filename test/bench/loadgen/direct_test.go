package loadgen

import (
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"function/shared/kafka"
)

// -direct-ce must publish exactly what ingest writes for the same event, or the
// broker's cost per record it measures is not ingest's.
func TestDirectCloudEventIsIngestsRecord(t *testing.T) {
	d := &DirectTarget{topic: "events", CloudEvents: true, events: Events{RunID: "r", Size: 64, Keys: 10}.withDefaults()}
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	m, err := d.cloudEvent(context.Background(), 13, at)
	if err != nil {
		t.Fatal(err)
	}
	cm := &sarama.ConsumerMessage{Topic: "events"}
	for i := range m.Headers {
		cm.Headers = append(cm.Headers, &m.Headers[i])
	}
	cm.Value, _ = m.Value.Encode()
	key, _ := m.Key.Encode()
	e, err := kafka.DecodeRecord(context.Background(), cm)
	if err != nil {
		t.Fatal(err)
	}
	ev := d.events
	if e.ID() != ev.ID(13) || e.Source() != ev.SourceOf(13) || e.Type() != ev.Type || e.Subject() != ev.Subject(13) ||
		!e.Time().Equal(at) || string(key) != ev.Subject(13) || string(e.Data()) != string(ev.AppendData(nil, 13)) ||
		e.DataContentType() != "application/json" || e.Extensions()["partitionkey"] != ev.Subject(13) {
		t.Fatalf("record decodes to %v with key %q", e, key)
	}
}
