/*
 * A stand-in bcryptprimitives.dll for Wine 8 (Debian bookworm), which lacks it.
 *
 * Rust's standard library on Windows (1.78+) imports ProcessPrng from
 * bcryptprimitives.dll, so no Rust Windows program starts under Wine 8 without
 * it (Wine 9 ships one). wine_end_to_end.rs compiles this with mingw-w64 into
 * the test's own Wine prefix (C:\windows\system32); nothing of it reaches a
 * real Windows machine, which has the real DLL. ProcessPrng is answered from
 * RtlGenRandom (advapi32 SystemFunction036), which Wine implements.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length)
{
    while (length > 0) {
        ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
        if (!SystemFunction036(data, chunk))
            return FALSE;
        data += chunk;
        length -= chunk;
    }
    return TRUE;
}
