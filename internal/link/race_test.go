//go:build race

package link

// raceBuild scales the long randomized tests down under the race detector,
// where the pure-Go SQLite costs about 20 times as much.
const raceBuild = true
