//! The few CUDA runtime calls that libtorch does not expose: free memory, the device's name,
//! and events, which let the engine wait for one batch's results without waiting for the
//! whole device (so the next batch can already be running).
//!
//! The runtime is the copy libtorch's CUDA backend already loaded, opened by its soname, so
//! nothing new is initialised. Every function returns `None` (or `false`) without CUDA.

use std::ffi::c_void;
use std::sync::OnceLock;

/// A CUDA runtime status code; 0 is success.
type Status = i32;

/// The runtime's entry points, resolved once.
struct Runtime {
    get_device: unsafe extern "C" fn(*mut i32) -> Status,
    set_device: unsafe extern "C" fn(i32) -> Status,
    mem_get_info: unsafe extern "C" fn(*mut usize, *mut usize) -> Status,
    get_device_properties: unsafe extern "C" fn(*mut c_void, i32) -> Status,
    event_create_with_flags: unsafe extern "C" fn(*mut *mut c_void, u32) -> Status,
    event_record: unsafe extern "C" fn(*mut c_void, *mut c_void) -> Status,
    event_synchronize: unsafe extern "C" fn(*mut c_void) -> Status,
    event_destroy: unsafe extern "C" fn(*mut c_void) -> Status,
}

/// `cudaEventBlockingSync | cudaEventDisableTiming`: a waiting thread sleeps instead of
/// spinning (the decoder and encoder threads need the cores), and no timestamps are kept.
const EVENT_FLAGS: u32 = 0x01 | 0x02;

/// The CUDA runtime's soname for the CUDA 13 builds of libtorch 2.11.
const CUDART: &str = "libcudart.so.13";

fn runtime() -> Option<&'static Runtime> {
    static RUNTIME: OnceLock<Option<Runtime>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            if !super::register_cuda() {
                return None;
            }
            // SAFETY: the CUDA runtime is already loaded as a dependency of libtorch_cuda.so;
            // opening it by its soname returns that copy and runs no new initialisers.
            let library = unsafe { libloading::Library::new(CUDART) }.ok()?;
            // SAFETY: these are the CUDA runtime's documented C signatures. The library is
            // never unloaded (forgotten below), so the function pointers stay valid.
            let runtime = unsafe {
                Runtime {
                    get_device: *library.get(b"cudaGetDevice\0").ok()?,
                    set_device: *library.get(b"cudaSetDevice\0").ok()?,
                    mem_get_info: *library.get(b"cudaMemGetInfo\0").ok()?,
                    get_device_properties: *library
                        .get(b"cudaGetDeviceProperties\0")
                        .or_else(|_| library.get(b"cudaGetDeviceProperties_v2\0"))
                        .ok()?,
                    event_create_with_flags: *library.get(b"cudaEventCreateWithFlags\0").ok()?,
                    event_record: *library.get(b"cudaEventRecord\0").ok()?,
                    event_synchronize: *library.get(b"cudaEventSynchronize\0").ok()?,
                    event_destroy: *library.get(b"cudaEventDestroy\0").ok()?,
                }
            };
            std::mem::forget(library);
            Some(runtime)
        })
        .as_ref()
}

/// Runs `call` with device `index` current on this thread, then restores the previous one
/// (libtorch restores its own device guards the same way).
fn on_device<T>(runtime: &Runtime, index: usize, call: impl FnOnce() -> Option<T>) -> Option<T> {
    let mut previous = 0;
    // SAFETY: the pointer is to a live local.
    if unsafe { (runtime.get_device)(&mut previous) } != 0 {
        return None;
    }
    // SAFETY: plain calls with integer arguments.
    if unsafe { (runtime.set_device)(i32::try_from(index).ok()?) } != 0 {
        return None;
    }
    let result = call();
    // SAFETY: as above.
    unsafe { (runtime.set_device)(previous) };
    result
}

/// Free and total bytes of CUDA device `index`.
pub fn memory(index: usize) -> Option<(u64, u64)> {
    let runtime = runtime()?;
    on_device(runtime, index, || {
        let (mut free, mut total) = (0usize, 0usize);
        // SAFETY: the pointers are to live locals.
        let status = unsafe { (runtime.mem_get_info)(&mut free, &mut total) };
        (status == 0).then_some((free as u64, total as u64))
    })
}

/// The name of CUDA device `index`, as `nvidia-smi` shows it (e.g. "NVIDIA H100 80GB HBM3").
pub fn device_name(index: usize) -> Option<String> {
    let runtime = runtime()?;
    // `cudaDeviceProp` begins with `char name[256]`; its full size changes between CUDA
    // versions (about 1 KB), so the buffer is made far larger than any of them.
    let mut properties = vec![0u64; 2048];
    // SAFETY: the buffer is 16 KB, 8-byte aligned, and outlives the call.
    let status = unsafe { (runtime.get_device_properties)(properties.as_mut_ptr().cast(), i32::try_from(index).ok()?) };
    if status != 0 {
        return None;
    }
    let bytes: Vec<u8> = properties.iter().flat_map(|word| word.to_ne_bytes()).take(256).collect();
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..end]).trim().to_string())
}

/// A point in the work queued so far on a device's default stream (the stream libtorch
/// queues on): waiting for it waits for that work only, not for anything queued later.
pub struct Event {
    raw: *mut c_void,
}

impl Event {
    /// Marks the end of the work queued so far on device `index`. `None` without a usable
    /// CUDA runtime.
    pub fn record(index: usize) -> Option<Self> {
        let runtime = runtime()?;
        on_device(runtime, index, || {
            let mut raw = std::ptr::null_mut();
            // SAFETY: the pointer is to a live local; the flags are documented values.
            if unsafe { (runtime.event_create_with_flags)(&mut raw, EVENT_FLAGS) } != 0 {
                return None;
            }
            let event = Self { raw };
            // SAFETY: a live event; a null stream is the device's legacy default stream,
            // which is libtorch's default stream.
            (unsafe { (runtime.event_record)(event.raw, std::ptr::null_mut()) } == 0).then_some(event)
        })
    }

    /// Blocks until the marked work has finished; `false` if the runtime reported an error
    /// (the work failed).
    pub fn wait(&self) -> bool {
        // An event exists only where the runtime loaded.
        let Some(runtime) = runtime() else { return false };
        // SAFETY: a live event created by this runtime.
        unsafe { (runtime.event_synchronize)(self.raw) == 0 }
    }
}

// SAFETY: a CUDA event handle may be waited for and destroyed from any thread.
unsafe impl Send for Event {}
// SAFETY: `wait` only reads the handle; the runtime synchronises concurrent waits.
unsafe impl Sync for Event {}

impl Drop for Event {
    fn drop(&mut self) {
        if let Some(runtime) = runtime() {
            // SAFETY: a live event, destroyed once; pending work keeps running.
            unsafe { (runtime.event_destroy)(self.raw) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_cuda_nothing_is_reported() {
        if crate::device::register_cuda() && tch::Cuda::device_count() > 0 {
            return; // a machine with a GPU: covered by the benchmarks instead
        }
        assert_eq!(memory(0), None);
        assert_eq!(device_name(0), None);
        assert!(Event::record(0).is_none());
    }
}
