package consumer

import (
	"io"
	"log/slog"
	"testing"

	"github.com/IBM/sarama"
)

// fakeSession is the part of a sarama session Cleanup uses; the embedded interface
// makes any other call panic, which would fail the test.
type fakeSession struct {
	sarama.ConsumerGroupSession
	commits int
}

func (s *fakeSession) Commit()             { s.commits++ }
func (s *fakeSession) GenerationID() int32 { return 1 }

// TestCleanupAfterFailedSetup: when Setup fails (say, a start offset cannot be
// resolved on a topic that was just recreated), sarama still calls Cleanup. Cleanup
// must not touch the commit loop Setup never started: closing its nil channel
// panicked and took the whole process down, where the runner should join again.
func TestCleanupAfterFailedSetup(t *testing.T) {
	h := &groupHandler{r: &Runner{log: slog.New(slog.NewTextHandler(io.Discard, nil))}}
	s := &fakeSession{}
	if err := h.Cleanup(s); err != nil {
		t.Fatal(err)
	}
	if s.commits != 1 {
		t.Errorf("Cleanup committed %d times, want once (nothing is lost by committing what is marked)", s.commits)
	}
}
