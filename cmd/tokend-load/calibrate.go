package main

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"time"

	"golang.org/x/crypto/argon2"
)

// tokend's default argon2id parameters (TOKEND_ARGON2_PARAMS).
const (
	argonMemoryKiB = 19456
	argonTime      = 2
	argonThreads   = 1
)

// measureArgon2 times one argon2id hash at tokend's default parameters:
// the median of n, after one unmeasured hash.
func measureArgon2(n int) time.Duration {
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	pw := []byte("load-password")
	argon2.IDKey(pw, salt, argonTime, argonMemoryKiB, argonThreads, 32)
	times := make([]float64, n)
	for i := range times {
		t0 := time.Now()
		argon2.IDKey(pw, salt, argonTime, argonMemoryKiB, argonThreads, 32)
		times[i] = float64(time.Since(t0))
	}
	m, _ := median(times)
	return time.Duration(m)
}

// measureRSASign times one RSA-2048 PKCS#1 v1.5 SHA-256 signature on one
// goroutine: the median over runs of the mean of a batch of signatures
// (hashing a JWT-sized input included).
func measureRSASign(runs, batch int) (time.Duration, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0, err
	}
	msg := make([]byte, 400) // about a JWT's signing input
	_, _ = rand.Read(msg)
	sign := func() error {
		h := sha256.Sum256(msg)
		_, err := rsa.SignPKCS1v15(nil, key, crypto.SHA256, h[:])
		return err
	}
	if err := sign(); err != nil {
		return 0, err
	}
	times := make([]float64, runs)
	for i := range times {
		t0 := time.Now()
		for range batch {
			if err := sign(); err != nil {
				return 0, err
			}
		}
		times[i] = float64(time.Since(t0)) / float64(batch)
	}
	m, _ := median(times)
	return time.Duration(m), nil
}
