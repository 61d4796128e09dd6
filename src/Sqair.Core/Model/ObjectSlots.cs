using static Sqair.Native.KeptScalars;
using static TorchSharp.torch;

namespace Sqair.Model;

/// <summary>
/// The N object slots of every particle row (R = B·K rows) after a time step, present slots first.
/// What [R, N, D]; Where [R, N, 4] logits; Presence [R, N] 0/1; PresenceProb [R, N];
/// Ids [R, N] int64 (−1 absent); Temporal and Prior [R, N, hidden] RNN states. Relaxed [R, N]: in training with
/// presence_estimator = concrete, the relaxed presences in (0, 1) that weight the objects (docs/design.md §4),
/// while Presence, their hard values, orders the slots and counts them; null otherwise. Ink [R, N]: with
/// prop_prior_drawn_pixels, what each object drew on the canvas once the frame was decoded (canvas pixels, the
/// next frame's prior reads it); null otherwise and before decoding.
/// </summary>
internal sealed record ObjectSlots(Tensor What, Tensor Where, Tensor Presence, Tensor PresenceProb, Tensor Ids,
                                   Tensor Temporal, Tensor Prior, Tensor? Relaxed = null, Tensor? Ink = null)
{
    /// <summary>What weights each object where the discrete model uses its 0/1 presence.</summary>
    public Tensor Weight => Relaxed ?? Presence;

    /// <summary>
    /// The slots of the rows <paramref name="rows"/> [R'] (a particle's objects, ids and RNN states move together).
    /// </summary>
    public ObjectSlots Select(Tensor rows) =>
        new(What[rows], Where[rows], Presence[rows], PresenceProb[rows], Ids[rows], Temporal[rows], Prior[rows],
            Relaxed?[rows], Ink?[rows]);

    /// <summary>
    /// Propagated slots <paramref name="a"/> and discovered slots <paramref name="b"/> side by side,
    /// present slots moved to the front keeping their order (a stable partition), the first
    /// <paramref name="n"/> kept (without ink: the merged frame is not decoded yet). Everything belonging to an
    /// object moves with it: the float fields
    /// travel packed in one [R, 2N, F] tensor, so the merge is one gather, not one per field.
    /// </summary>
    public static ObjectSlots Merge(ObjectSlots a, ObjectSlots b, int n)
    {
        bool relaxed = a.Relaxed is not null || b.Relaxed is not null;
        // The relaxed presences travel as one more column when there are any.
        Tensor Packed(ObjectSlots s) =>
            cat([s.What, s.Where, s.Presence.unsqueeze(-1), s.PresenceProb.unsqueeze(-1), s.Temporal, s.Prior,
                 .. relaxed ? new[] { s.Weight.unsqueeze(-1) } : []], -1);
        var packed = cat([Packed(a), Packed(b)], 1);                                  // [R, 2N, F]
        var presence = cat([a.Presence, b.Presence], 1);
        long slots = presence.shape[1], r = presence.shape[0];
        var order = Arange(slots, ScalarType.Float32, presence.device);
        var index = presence.OneMinus().mul(Kept(slots)).Plus(order).argsort(1).narrow(1, 0, n);   // [R, n]
        var taken = packed.gather(1, index.unsqueeze(-1).expand(r, n, packed.shape[2]));
        long d = a.What.shape[2], h = a.Temporal.shape[2], hp = a.Prior.shape[2];
        var f = taken.split(relaxed ? [d, 4, 1, 1, h, hp, 1] : [d, 4, 1, 1, h, hp], -1);
        return new(f[0], f[1], f[2].squeeze(-1), f[3].squeeze(-1), cat([a.Ids, b.Ids], 1).gather(1, index), f[4], f[5],
                   relaxed ? f[6].squeeze(-1) : null);
    }
}
