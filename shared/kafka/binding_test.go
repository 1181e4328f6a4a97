package kafka

import (
	"context"
	"testing"

	"github.com/IBM/sarama"
	"github.com/cloudevents/sdk-go/v2/event"
)

// TestEncodeRecordCarriesTheKeyAsPartitionKey guards push mode: a KafkaSource
// forwards the CloudEvent in the record (its ce_ headers) and drops the record key,
// so the key tide chose must travel as the partitionkey attribute too, or push-mode
// notifications lose it. An event that names its own partitionkey keeps it as is.
func TestEncodeRecordCarriesTheKeyAsPartitionKey(t *testing.T) {
	cases := []struct {
		name, extension, key, want string
	}{
		{name: "key chosen by tide", key: "issue-1", want: "issue-1"},
		{name: "event's own partitionkey", extension: "tenant-7", key: "tenant-7", want: "tenant-7"},
		{name: "no key", key: "", want: ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := event.New()
			e.SetID("id-1")
			e.SetSource("/s")
			e.SetType("t")
			if c.extension != "" {
				e.SetExtension("partitionkey", c.extension)
			}
			m, err := EncodeRecord(context.Background(), "events", &e, c.key)
			if err != nil {
				t.Fatal(err)
			}
			rec := &sarama.ConsumerMessage{Topic: "events"}
			n := 0
			for _, h := range m.Headers {
				if string(h.Key) == "ce_partitionkey" {
					n++
				}
				h := h
				rec.Headers = append(rec.Headers, &h)
			}
			if c.want != "" && n != 1 {
				t.Fatalf("%d ce_partitionkey headers, want 1", n)
			}
			got, err := DecodeRecord(context.Background(), rec)
			if err != nil {
				t.Fatal(err)
			}
			if pk, _ := got.Extensions()["partitionkey"].(string); pk != c.want {
				t.Fatalf("decoded partitionkey %q, want %q", pk, c.want)
			}
			if c.extension == "" && e.Extensions()["partitionkey"] != nil {
				t.Fatal("EncodeRecord changed the caller's event")
			}
		})
	}
}
