package loop

// StaleCompletions reports the completions dropped because their token's
// slot generation had moved on.
func (l *Loop) StaleCompletions() int { return l.net.stale }
