/*
 * Shared by the test programs that hold a key under construction
 * (sigkey.c, pool.c): the raw key calls, a sleep, and the request-key
 * helper's side. Each program is its own helper (`watchq exec
 * --request-key PROGRAM`), started as `PROGRAM create KEY UID GID T P S`
 * (/sbin/request-key's form); its call-out is "hold:PATH", and the helper
 * holds the construction until PATH exists (90 s at most), then
 * instantiates the key with "made".
 */
#ifndef KEYHOLD_H
#define KEYHOLD_H

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define KEYCTL_GET_KEYRING_ID 0
#define KEYCTL_UPDATE 2
#define KEYCTL_DESCRIBE 6
#define KEYCTL_SEARCH 10
#define KEYCTL_READ 11
#define KEYCTL_INSTANTIATE 12
#define KEYCTL_ASSUME_AUTHORITY 16
#define KEY_SPEC_THREAD_KEYRING -1
#define KEY_SPEC_SESSION_KEYRING -3
#define KEY_SPEC_REQKEY_AUTH_KEY -7

static long kc(long cmd, long a, long b, long c, long d)
{
	return syscall(SYS_keyctl, cmd, a, b, c, d);
}

static long rk(const char *type, const char *desc, const char *callout, long dest)
{
	return syscall(SYS_request_key, type, desc, callout, dest);
}

static void msleep(int ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&t, NULL);
}

/* The helper: hold the construction until the file exists (90 s at most). */
static int create(char **argv)
{
	long key = atol(argv[2]);
	char callout[256];
	struct stat st;
	if (kc(KEYCTL_ASSUME_AUTHORITY, key, 0, 0, 0) < 0)
		return 3;
	long n = kc(KEYCTL_READ, KEY_SPEC_REQKEY_AUTH_KEY, (long)callout, sizeof callout - 1, 0);
	if (n < 0)
		return 4;
	callout[n < (long)sizeof callout ? n : (long)sizeof callout - 1] = 0;
	if (strncmp(callout, "hold:", 5) == 0)
		for (int i = 0; i < 9000 && stat(callout + 5, &st) < 0; i++)
			msleep(10);
	kc(KEYCTL_INSTANTIATE, key, (long)"made", 4, 0);
	return 0;
}

#endif
