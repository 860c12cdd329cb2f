; hello.asm - the smallest useful image: proves the reset vector, real-mode execution from
; the 0xF0000 alias, the debug console (port 0x402) and the exit port (0xF4) all work.
;
; Expected console output: "Hello from smmsim firmware!\n"; exit value 0 (QEMU status 1).

%include "include/image.inc"
%include "include/mode.inc"
%include "include/console.inc"

        MODE    16

start:
        RM_INIT
        PRINTLN "Hello from smmsim firmware!"
        EXIT    0

        CONSOLE_ROUTINES

        IMAGE_END
