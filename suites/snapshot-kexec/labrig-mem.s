# labrig-mem <seed> <MiB> <busy ms>: the snapshot → kexec → restore guest's workload.
# See mem-program.ts for what it prints; built there with `as --64` and `ld -static -nostdlib`.
.intel_syntax noprefix
.set SYS_read, 0
.set SYS_write, 1
.set SYS_open, 2
.set SYS_close, 3
.set SYS_mmap, 9
.set SYS_clock_gettime, 228
.set SYS_clock_nanosleep, 230
.set SYS_exit, 60
.set SLICE, 1048576

.section .bss
.lcomm line, 256
.lcomm linepos, 8
.lcomm numbuf, 32
.lcomm bootid, 40
.lcomm ts, 16
.lcomm tick, 8
.lcomm pass, 8
.lcomm pos, 8
.lcomm passstart, 8
.lcomm bad, 8
.lcomm first, 8
.lcomm nexttick, 8
.lcomm sliceend, 8
.lcomm mib, 8

.section .rodata
s_usage: .asciz "usage: labrig-mem <seed> <MiB> <busy ms>\n"
s_mmap: .asciz "labrig-mem: mmap failed\n"
s_pattern: .asciz "labrig-pattern "
s_tick: .asciz "labrig-tick "
s_verify: .asciz "labrig-verify "
s_ok: .asciz " ok "
s_mismatch: .asciz " mismatch "
s_sp: .asciz " "
s_dash: .asciz "-"
s_nl: .asciz "\n"
s_bootid: .asciz "/proc/sys/kernel/random/boot_id"

.section .text
.globl _start
_start:
    mov rbx, rsp
    cmp qword ptr [rbx], 4
    jb usage
    mov rsi, [rbx+16]
    call fnv1a
    mov r12, rax
    mov rsi, [rbx+24]
    call atou
    mov [rip+mib], rax
    mov r13, rax
    shl r13, 20
    test r13, r13
    jz usage
    mov rsi, [rbx+32]
    call atou
    imul r14, rax, 1000000
    mov eax, SYS_mmap
    xor edi, edi
    mov rsi, r13
    mov edx, 3
    mov r10d, 0x22
    mov r8, -1
    xor r9d, r9d
    syscall
    cmp rax, -4095
    jae mmapfail
    mov r15, rax
    movabs r10, 0x9e3779b97f4a7c15
    xor eax, eax
    mov r8, r15
    lea r9, [r15+r13]
fill:
    mov rdx, rax
    xor rdx, r12
    mov [r8], rdx
    add rax, r10
    add r8, 8
    cmp r8, r9
    jb fill
    lea rsi, [rip+s_pattern]
    call puts
    mov rax, [rip+mib]
    call putu
    call putsp
    mov rax, r12
    call putu
    call putsp
    mov rax, r15
    call putu
    call flushnl
    mov qword ptr [rip+first], -1
    call monons
    mov [rip+nexttick], rax
mainloop:
    inc qword ptr [rip+tick]
    call readbootid
    lea rsi, [rip+s_tick]
    call puts
    mov rax, [rip+tick]
    call putu
    call putsp
    lea rsi, [rip+bootid]
    call puts
    call flushnl
    call monons
    add rax, r14
    mov [rip+sliceend], rax
slice:
    mov rdi, [rip+pos]
    test rdi, rdi
    jnz 1f
    mov rax, [rip+tick]
    mov [rip+passstart], rax
1:  lea rsi, [rdi+SLICE]
    cmp rsi, r13
    jbe 2f
    mov rsi, r13
2:  mov [rip+pos], rsi
    call verify
    cmp qword ptr [rip+pos], r13
    jb 3f
    call passdone
3:  call monons
    cmp rax, [rip+sliceend]
    jb slice
    mov rax, [rip+nexttick]
    add rax, 1000000000
    mov [rip+nexttick], rax
    call monons
    cmp rax, [rip+nexttick]
    jb 4f
    mov [rip+nexttick], rax
    jmp mainloop
4:  mov rax, [rip+nexttick]
    xor edx, edx
    mov rcx, 1000000000
    div rcx
    mov [rip+ts], rax
    mov [rip+ts+8], rdx
    mov eax, SYS_clock_nanosleep
    mov edi, 1
    mov esi, 1
    lea rdx, [rip+ts]
    xor r10d, r10d
    syscall
    jmp mainloop

# rdi = from, rsi = to (byte offsets into the region)
verify:
    mov rax, rdi
    shr rax, 3
    movabs r10, 0x9e3779b97f4a7c15
    imul rax, r10
    lea r8, [r15+rdi]
    lea r9, [r15+rsi]
    cmp r8, r9
    jae 9f
5:  mov rdx, rax
    xor rdx, r12
    cmp rdx, [r8]
    jne 7f
6:  add rax, r10
    add r8, 8
    cmp r8, r9
    jb 5b
9:  ret
7:  inc qword ptr [rip+bad]
    cmp qword ptr [rip+first], -1
    jne 6b
    mov r11, r8
    sub r11, r15
    mov [rip+first], r11
    jmp 6b

passdone:
    lea rsi, [rip+s_verify]
    call puts
    mov rax, [rip+pass]
    call putu
    call putsp
    mov rax, [rip+passstart]
    call putu
    call putsp
    mov rax, [rip+tick]
    call putu
    lea rsi, [rip+s_ok]
    cmp qword ptr [rip+bad], 0
    je 1f
    lea rsi, [rip+s_mismatch]
1:  call puts
    mov rax, [rip+bad]
    call putu
    call putsp
    mov rax, [rip+first]
    cmp rax, -1
    jne 2f
    lea rsi, [rip+s_dash]
    call puts
    jmp 3f
2:  call putu
3:  call flushnl
    inc qword ptr [rip+pass]
    mov qword ptr [rip+pos], 0
    mov qword ptr [rip+bad], 0
    mov qword ptr [rip+first], -1
    ret

monons:
    mov eax, SYS_clock_gettime
    mov edi, 1
    lea rsi, [rip+ts]
    syscall
    imul rax, [rip+ts], 1000000000
    add rax, [rip+ts+8]
    ret

readbootid:
    mov eax, SYS_open
    lea rdi, [rip+s_bootid]
    xor esi, esi
    syscall
    test rax, rax
    js 1f
    mov rdi, rax
    push rdi
    mov eax, SYS_read
    lea rsi, [rip+bootid]
    mov edx, 36
    syscall
    pop rdi
    mov eax, SYS_close
    syscall
1:  mov byte ptr [rip+bootid+36], 0
    ret

# rsi = NUL-terminated string appended to the line
puts:
    lea rdi, [rip+line]
    add rdi, [rip+linepos]
1:  mov al, [rsi]
    test al, al
    jz 2f
    mov [rdi], al
    inc rsi
    inc rdi
    jmp 1b
2:  lea rax, [rip+line]
    sub rdi, rax
    mov [rip+linepos], rdi
    ret

putsp:
    lea rsi, [rip+s_sp]
    jmp puts

# rax = unsigned number appended in decimal
putu:
    lea rsi, [rip+numbuf+31]
    mov byte ptr [rsi], 0
    mov rcx, 10
1:  xor edx, edx
    div rcx
    add dl, 48
    dec rsi
    mov [rsi], dl
    test rax, rax
    jnz 1b
    jmp puts

flushnl:
    lea rsi, [rip+s_nl]
    call puts
    mov eax, SYS_write
    mov edi, 1
    lea rsi, [rip+line]
    mov rdx, [rip+linepos]
    syscall
    mov qword ptr [rip+linepos], 0
    ret

# rsi = NUL-terminated seed -> rax = FNV-1a 64
fnv1a:
    movabs rax, 0xcbf29ce484222325
    movabs rcx, 0x100000001b3
1:  movzx edx, byte ptr [rsi]
    test edx, edx
    jz 2f
    xor rax, rdx
    imul rax, rcx
    inc rsi
    jmp 1b
2:  ret

# rsi = NUL-terminated decimal -> rax
atou:
    xor eax, eax
1:  movzx edx, byte ptr [rsi]
    sub edx, 48
    cmp edx, 9
    ja 2f
    imul rax, rax, 10
    add rax, rdx
    inc rsi
    jmp 1b
2:  ret

usage:
    lea rsi, [rip+s_usage]
    jmp die
mmapfail:
    lea rsi, [rip+s_mmap]
die:
    call puts
    mov eax, SYS_write
    mov edi, 2
    lea rsi, [rip+line]
    mov rdx, [rip+linepos]
    syscall
    mov eax, SYS_exit
    mov edi, 1
    syscall
