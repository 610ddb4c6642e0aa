// A small APB register block with an interrupt: the example that `mmiobus device rtl` serves.
//
//   0x00 ID       read-only   0x524c5401 ("RLT" and a version)
//   0x04 SCRATCH  read/write  any value; byte lanes follow PSTRB
//   0x08 CTRL     read/write  bit 0: interrupt enable
//   0x0c STATUS   write 1 to clear; bit 0: an event is pending
//   0x10 TRIGGER  write-only  writing bit 0 sets STATUS bit 0
//   0x14 CYCLES   read-only   PCLK cycles since reset (shows how simulated time advances)
//   other offsets answer PSLVERR
//
// irq = CTRL.enable & STATUS.pending (a level).
`timescale 1ns/1ps
module regblock (
    input  wire        pclk,
    input  wire        presetn,
    input  wire        psel,
    input  wire        penable,
    input  wire        pwrite,
    input  wire [11:0] paddr,
    input  wire [31:0] pwdata,
    input  wire [3:0]  pstrb,
    output reg  [31:0] prdata,
    output wire        pready,
    output reg         pslverr,
    output wire        irq
);
    localparam [31:0] ID = 32'h524c5401;

    reg [31:0] scratch;
    reg        enable;
    reg        pending;
    reg [31:0] cycles;

    assign pready = 1'b1;
    assign irq = enable & pending;

    wire access = psel & penable;
    wire known = paddr[11:5] == 0 && paddr[4:2] <= 3'd5;

    function [31:0] lanes(input [31:0] old, input [31:0] value, input [3:0] strobe);
        lanes = {strobe[3] ? value[31:24] : old[31:24], strobe[2] ? value[23:16] : old[23:16],
                 strobe[1] ? value[15:8] : old[15:8], strobe[0] ? value[7:0] : old[7:0]};
    endfunction

    always @(posedge pclk or negedge presetn) begin
        if (!presetn) begin
            scratch <= 32'h0;
            enable <= 1'b0;
            pending <= 1'b0;
            cycles <= 32'h0;
        end else begin
            cycles <= cycles + 1;
            if (access && pwrite) begin
                case (paddr[4:2])
                    3'd1: scratch <= lanes(scratch, pwdata, pstrb);
                    3'd2: if (pstrb[0]) enable <= pwdata[0];
                    3'd3: if (pstrb[0] && pwdata[0]) pending <= 1'b0;
                    3'd4: if (pstrb[0] && pwdata[0]) pending <= 1'b1;
                    default: ;
                endcase
            end
        end
    end

    always @(*) begin
        pslverr = access && !known;
        case (paddr[4:2])
            3'd0: prdata = ID;
            3'd1: prdata = scratch;
            3'd2: prdata = {31'b0, enable};
            3'd3: prdata = {31'b0, pending};
            3'd5: prdata = cycles;
            default: prdata = 32'h0;
        endcase
    end
endmodule
