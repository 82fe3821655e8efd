package enumerators

import "time"

// ThrottleWithTimers returns cfg with time.AfterFunc replaced by after, so
// tests decide when CheckEvery has passed.
func ThrottleWithTimers(cfg ThrottleConfig, after func(d time.Duration, f func()) (cancel func())) ThrottleConfig {
	cfg.after = after
	return cfg
}
