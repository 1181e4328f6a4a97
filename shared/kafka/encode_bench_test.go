package kafka

import (
	"context"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"
)

// EncodeRecord skips the binding's key mapping for speed; an event's own
// partitionkey extension must still key a record whose caller chose no key, as the
// binding would have, or such records would lose their partition affinity.
func TestEncodeRecordKeysByTheExtensionWhenGivenNoKey(t *testing.T) {
	for _, c := range []struct{ name, extension, key, want string }{
		{name: "extension, no key", extension: "tenant-7", want: "tenant-7"},
		{name: "key wins", extension: "tenant-7", key: "other", want: "other"},
		{name: "neither", want: ""},
	} {
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
			var got string
			if m.Key != nil {
				b, _ := m.Key.Encode()
				got = string(b)
			}
			if got != c.want {
				t.Fatalf("record key %q, want %q", got, c.want)
			}
		})
	}
}

// BenchmarkEncodeRecord is one 1 KiB binary-mode event turned into a record.
func BenchmarkEncodeRecord(b *testing.B) {
	e := event.New()
	e.SetID("id-1")
	e.SetSource("/bench")
	e.SetType("dev.tide.bench")
	e.SetSubject("key-1")
	data := make([]byte, 1024)
	for i := range data {
		data[i] = 'x'
	}
	data[0], data[len(data)-1] = '"', '"'
	if err := e.SetData("application/json", data); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := EncodeRecord(ctx, "events", &e, "key-1"); err != nil {
			b.Fatal(err)
		}
	}
}
