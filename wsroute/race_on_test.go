//go:build race

package wsroute_test

// raceEnabled reports a -race build, where compress/flate runs many times
// slower: tests whose subject is timing under compression skip then.
const raceEnabled = true
