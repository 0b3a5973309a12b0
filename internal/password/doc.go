// Package password hashes and verifies user passwords.
//
// New hashes are argon2id in the PHC string format
// ($argon2id$v=19$m=19456,t=2,p=1$salt$hash). bcrypt hashes ($2a$, $2b$,
// $2y$) imported from another system are verified too, and every verification
// says whether the hash should be replaced (bcrypt, or argon2id with weaker
// parameters than configured), so login can upgrade it.
//
// Hashing is memory-hard on purpose, so the Hasher bounds how many hashes run
// at once: a caller beyond the bound waits briefly, then gets ErrBusy (the HTTP
// layer answers 429) rather than the process growing without bound. Once
// no hash has been in flight for DefaultIdleRelease, the Hasher returns the
// freed working memory of the burst to the operating system (once per idle
// period), so a process that served a login storm does not stay at its
// peak RSS while it only refreshes tokens.
package password
