/* enc-blobs.h - encrypted-key blobs for enc.c's enc-blobs section, both
 * "new user:wqmk 40" keys read with enc.c's master key user:wqmk: one the
 * real kernel made (enc.c enc-make on Linux 6.12.117, in a recording run
 * of 2026-12-01 before this file had them; the committed enc.txt's
 * enc-make is a later run's, random as every run's), one watchq made
 * (enc.c enc-make under watchq exec).
 * Replacing either means re-recording enc (scripts/record-conformance.sh). */
static const char kernel_blob[] =
	"default user:wqmk 40 145bb5c3af862f8e94c9595d878cb84e00c3e6600b309b0249517dd632eb4ed4b264bdbff10786df38e0d604cd23c0c53a28771efab072ead37b872d94ae185082acc847aab7d35201d0c7b37f885c54f94e551235adbc2f08fccd14b071c27d5a";
static const char watchq_blob[] =
	"default user:wqmk 40 f72399c50ba1941ce2b801fdd5f3b6e6005f8e3abb8140335686f313d14ae812f9ef27e5f8c889c9fe9dcafcaf85fb566fe30ce51058d88e55d0bc1bdff3a485e1440e8c7b895e9c0502366c462865de9c7a55a44f30e03d078a9f89abdda30980";
