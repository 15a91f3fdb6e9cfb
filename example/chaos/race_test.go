//go:build race

package chaos

// raceEnabled: the race detector allows 8,128 goroutines at most.
const raceEnabled = true
