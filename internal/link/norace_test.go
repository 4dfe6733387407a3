//go:build !race

package link

const raceBuild = false
