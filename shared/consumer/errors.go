package consumer

import "errors"

// transientError marks a failure of infrastructure (Redis or Kafka unreachable) that
// retrying will fix: the record is retried until it succeeds or the partition is
// revoked, never dead-lettered.
type transientError struct{ err error }

func (e transientError) Error() string { return "transient: " + e.err.Error() }
func (e transientError) Unwrap() error { return e.err }

// Transient wraps err as a transient failure (nil stays nil).
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return transientError{err}
}

// IsTransient reports whether err (or an error it wraps) was marked Transient.
func IsTransient(err error) bool {
	var t transientError
	return errors.As(err, &t)
}

// poisonError marks a record that can never be handled (it cannot be decoded, or is
// invalid): it goes to the dead-letter topic at once, without retries.
type poisonError struct{ err error }

func (e poisonError) Error() string { return "poison: " + e.err.Error() }
func (e poisonError) Unwrap() error { return e.err }

// Poison wraps err as a permanent failure of this record (nil stays nil).
func Poison(err error) error {
	if err == nil {
		return nil
	}
	return poisonError{err}
}

// IsPoison reports whether err (or an error it wraps) was marked Poison.
func IsPoison(err error) bool {
	var p poisonError
	return errors.As(err, &p)
}
