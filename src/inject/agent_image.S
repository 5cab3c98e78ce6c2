/* The agent shared object, embedded at build time (see CMakeLists.txt). */
    .section .rodata.memtap_agent, "a"
    .balign 64
    .globl memtap_agent_image_begin
    .hidden memtap_agent_image_begin
memtap_agent_image_begin:
    .incbin MEMTAP_AGENT_IMAGE_PATH
    .globl memtap_agent_image_end
    .hidden memtap_agent_image_end
memtap_agent_image_end:
    .section .note.GNU-stack, "", @progbits
