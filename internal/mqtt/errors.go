package mqtt

import (
	"errors"
	"fmt"
)

var (
	// ErrConfig is matched by every *ConfigError.
	ErrConfig = errors.New("mqtt: bad configuration")
	// ErrInvalidEvent is matched by every *EventError.
	ErrInvalidEvent = errors.New("mqtt: invalid event")
	// ErrClosed is returned by Publish, UpdateDevice and Declare after Close.
	ErrClosed = errors.New("mqtt: publisher closed")
	// ErrCloseTimeout is returned by Close when its goroutines did not stop
	// within the close deadline.
	ErrCloseTimeout = errors.New("mqtt: close deadline passed before the connection stopped")
	// ErrTooManyEntities is returned when an event would add an entity past
	// the publisher's bound.
	ErrTooManyEntities = errors.New("mqtt: too many (device, channel, type) entities")
)

// ConfigError names the configuration field that is wrong. Value never holds
// a password.
type ConfigError struct {
	Field  string
	Value  string
	Reason string
}

func (e *ConfigError) Error() string {
	if e.Value == "" {
		return fmt.Sprintf("mqtt: %s: %s", e.Field, e.Reason)
	}
	return fmt.Sprintf("mqtt: %s %q: %s", e.Field, e.Value, e.Reason)
}

func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// EventError names the event field that is wrong.
type EventError struct {
	Field  string
	Value  string
	Reason string
}

func (e *EventError) Error() string {
	return fmt.Sprintf("mqtt: event %s %q: %s", e.Field, e.Value, e.Reason)
}

func (e *EventError) Is(target error) bool { return target == ErrInvalidEvent }
